"""Judgements remembered by the identity of the view objects they were made on.

Agents re-send their whole history on every turn, and the provider adapters hand out the very same message objects
for messages they have seen before (their view cache). A judgement that depends only on such an object (does this
message hold a secret, which trusted-data policy applies to this tool result) is therefore made once, not once per
turn. Keys are object ids; each entry keeps its object alive, so an id cannot be reused while its entry exists.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from plumbing.bounded import BoundedDict

V = TypeVar("V")
MISSING: Any = object()


class IdentityMemo(Generic[V]):
    def __init__(self, capacity: int = 20_000) -> None:
        self._entries: BoundedDict[tuple[object, Any, V]] = BoundedDict(capacity)

    def get(self, subject: object, qualifier: Any = None) -> V:
        """The value remembered for ``subject`` (and ``qualifier``, compared by equality), else ``MISSING``."""
        entry = self._entries.get(id(subject))
        if entry is None or entry[0] is not subject or entry[1] != qualifier:
            return MISSING
        return entry[2]

    def put(self, subject: object, value: V, qualifier: Any = None) -> V:
        self._entries.put(id(subject), (subject, qualifier, value))
        return value
