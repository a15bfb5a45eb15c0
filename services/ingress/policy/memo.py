"""Judgements remembered by the identity of the view objects they were made on.

Agents re-send their whole history on every turn, and the provider adapters hand out the very same message objects
for messages they have seen before (their view cache). A judgement that depends only on such an object (does this
message hold a secret, which trusted-data policy applies to this tool result) is therefore made once, not once per
turn. Keys are object ids; each entry keeps its object alive, so an id cannot be reused while its entry exists.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

V = TypeVar("V")
_MISSING: Any = object()


class IdentityMemo(Generic[V]):
    def __init__(self, capacity: int = 20_000) -> None:
        self._capacity = capacity
        self._entries: dict[int, tuple[object, Any, V]] = {}

    def get(self, subject: object, qualifier: Any = None) -> V:
        """The value remembered for ``subject`` (and ``qualifier``, compared by equality), else ``MISSING``."""
        entry = self._entries.get(id(subject))
        if entry is None or entry[0] is not subject or entry[1] != qualifier:
            return _MISSING
        return entry[2]

    def put(self, subject: object, value: V, qualifier: Any = None) -> V:
        if len(self._entries) >= self._capacity:
            # Drop the oldest half (dicts keep insertion order): cheap, and a busy history is re-learnt in one turn.
            for old in list(self._entries)[: self._capacity // 2]:
                del self._entries[old]
        self._entries[id(subject)] = (subject, qualifier, value)
        return value


MISSING: Any = _MISSING
