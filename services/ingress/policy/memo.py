"""Judgements remembered by the identity of the view objects they were made on.

Agents re-send their whole history on every turn, and the provider adapters hand out the very same message objects
for messages they have seen before (their view cache). A judgement that depends only on such an object (does this
message hold a secret, which trusted-data policy applies to this tool result) is therefore made once, not once per
turn. Keys are object ids, and each entry holds a weak reference to its object: the memo never keeps a message alive
(the view cache decides how long messages live, within its byte budget), and an entry whose object is gone never
answers for a newer object given the same id. Objects that take no weak reference are held, and counted.
"""

from __future__ import annotations

import weakref
from typing import Any, Generic, TypeVar

from plumbing.bounded import BoundedDict, approx_size

V = TypeVar("V")
MISSING: Any = object()
_REF_SIZE = 80
"""A weak reference, and the tuple holding it."""


class IdentityMemo(Generic[V]):
    def __init__(self, capacity: int = 20_000) -> None:
        self._entries: BoundedDict[tuple[Any, Any, V]] = BoundedDict(capacity)

    def get(self, subject: object, qualifier: Any = None) -> V:
        """The value remembered for ``subject`` (and ``qualifier``, compared by equality), else ``MISSING``."""
        entry = self._entries.get(id(subject))
        if entry is None or entry[0]() is not subject or entry[1] != qualifier:
            return MISSING
        return entry[2]

    def put(self, subject: object, value: V, qualifier: Any = None) -> V:
        size = _REF_SIZE + approx_size(qualifier) + approx_size(value)
        try:
            ref: Any = weakref.ref(subject)
        except TypeError:  # an object without weak references (a slotted dataclass): held, and counted
            ref = _Held(subject)
            size += approx_size(subject)
        self._entries.put(id(subject), (ref, qualifier, value), size)
        return value


class _Held:
    """A strong reference that reads like a weak one."""

    __slots__ = ("subject",)

    def __init__(self, subject: object) -> None:
        self.subject = subject

    def __call__(self) -> object:
        return self.subject
