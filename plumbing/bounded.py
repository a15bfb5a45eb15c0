"""A dictionary with a size limit, for the caches and memos of the hot path."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class BoundedDict(Generic[V]):
    """At most ``capacity`` entries; when full, the oldest half is dropped (dicts keep insertion order). Cheaper than
    an LRU's bookkeeping on every hit, and a cache of recent conversations refills in one turn."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._entries: dict[Hashable, V] = {}

    def get(self, key: Hashable) -> V | None:
        return self._entries.get(key)

    def put(self, key: Hashable, value: V) -> V:
        if len(self._entries) >= self._capacity:
            for old in list(self._entries)[: self._capacity // 2]:
                del self._entries[old]
        self._entries[key] = value
        return value

    def __len__(self) -> int:
        return len(self._entries)
