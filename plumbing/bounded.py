"""Dictionaries with a size limit in bytes, for the caches and memos of the hot path.

Every cache of the process draws on one ``CacheBudget`` (``WARDEN_CACHE_MAX_BYTES`` in all): an entry's size is
estimated when it is stored (``approx_size``), and when the caches together exceed the budget the one holding the
most bytes drops its oldest half. A count of entries would not do: one entry can be a megabyte-long message.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Hashable
from dataclasses import fields, is_dataclass
from typing import Any, Generic, TypeVar

V = TypeVar("V")

DEFAULT_CACHE_MAX_BYTES = 64 * 1024 * 1024
_ENTRY_OVERHEAD = 120
"""Bytes a dict slot, the key's and the size's bookkeeping cost beside the entry itself."""
_LARGEST_SHARE = 8
"""An entry larger than an eighth of the budget is not kept at all: it would push out everything else."""


def approx_size(value: Any) -> int:
    """An estimate of the memory ``value`` holds, in bytes: strings and bytes exactly, containers, pydantic models
    and dataclasses by walking them (shared objects are counted each time they are met: an over-estimate)."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        total += sys.getsizeof(item)
        if isinstance(item, str | bytes | bytearray | int | float | bool) or item is None:
            continue
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
        elif hasattr(item, "__pydantic_fields__"):
            total += sys.getsizeof(item.__dict__)
            stack.extend(getattr(item, name) for name in type(item).__pydantic_fields__)
        elif is_dataclass(item) and not isinstance(item, type):
            stack.extend(getattr(item, field.name) for field in fields(item))
    return total


class CacheBudget:
    """The bytes all the caches drawing on it may hold together."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.used = 0
        self._caches: weakref.WeakSet[BoundedDict[Any]] = weakref.WeakSet()

    def resize(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._shrink()

    def _register(self, cache: BoundedDict[Any]) -> None:
        self._caches.add(cache)

    def _charge(self, size: int) -> None:
        self.used += size
        if self.used > self.max_bytes:
            self._shrink()

    def _release(self, size: int) -> None:
        self.used -= size

    def _shrink(self) -> None:
        while self.used > self.max_bytes:
            largest = max(self._caches, key=lambda cache: cache.bytes, default=None)
            if largest is None or not largest.bytes:
                self.used = max(self.used, 0)
                return
            largest.drop_oldest_half()


BUDGET = CacheBudget()
"""The process's budget: ``warden`` sizes it from ``WARDEN_CACHE_MAX_BYTES`` at start."""


class _Account:
    """A cache's bytes, kept apart from the cache so they can be given back when it is garbage-collected."""

    __slots__ = ("bytes",)

    def __init__(self) -> None:
        self.bytes = 0


def _give_back(budget: CacheBudget, account: _Account) -> None:
    budget._release(account.bytes)
    account.bytes = 0


class BoundedDict(Generic[V]):
    """A cache drawing on ``budget``; ``capacity`` optionally bounds its entries as well. When over either, the
    oldest half is dropped (dicts keep insertion order): cheaper than an LRU's bookkeeping on every hit, and a cache
    of recent conversations refills in one turn."""

    def __init__(self, capacity: int | None = None, budget: CacheBudget | None = None) -> None:
        self._capacity = capacity
        self._budget = budget or BUDGET
        self._entries: dict[Hashable, V] = {}
        self._sizes: dict[Hashable, int] = {}
        self._account = _Account()
        self._budget._register(self)
        weakref.finalize(self, _give_back, self._budget, self._account)

    @property
    def bytes(self) -> int:
        return self._account.bytes

    def get(self, key: Hashable) -> V | None:
        return self._entries.get(key)

    def put(self, key: Hashable, value: V, size: int | None = None) -> V:
        """Store ``value`` under ``key``; ``size``: its bytes when known (else estimated with the key's)."""
        if size is None:
            size = approx_size(value) + approx_size(key)
        size += _ENTRY_OVERHEAD
        if size > self._budget.max_bytes // _LARGEST_SHARE:
            self.discard(key)
            return value  # too large to keep: computed again when met again
        if self._capacity is not None and len(self._entries) >= self._capacity:
            self.drop_oldest_half()
        self.discard(key)
        self._entries[key] = value
        self._sizes[key] = size
        self._account.bytes += size
        self._budget._charge(size)
        return value

    def discard(self, key: Hashable) -> None:
        if key in self._entries:
            del self._entries[key]
            size = self._sizes.pop(key)
            self._account.bytes -= size
            self._budget._release(size)

    def drop_oldest_half(self) -> None:
        keys = list(self._entries)
        for key in keys[: max(1, len(keys) // 2)]:
            self.discard(key)

    def __len__(self) -> int:
        return len(self._entries)
