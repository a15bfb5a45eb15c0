"""What the detectors found in a text, remembered by a digest of the text, within a bound in bytes.

Agents re-send the whole conversation on every turn, so most texts of a request were scored on an earlier turn; the
detectors are pure functions of the text (and of how it is read: the injection source, the learned tier's mode), so
their result can be reused. Entries are keyed by a BLAKE2b digest of those inputs (the text itself is not kept) and
weighed by an estimate of the bytes their Python objects hold; the least recently used go first once the total
passes ``WARDEN_GUARD_TEXT_CACHE_BYTES``.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

ENV = "WARDEN_GUARD_TEXT_CACHE_BYTES"
DEFAULT_BYTES = 32 * 1024 * 1024
_ENTRY_OVERHEAD = 200
"""Bytes of an entry besides its value: the digest, the ordered dict's node and slot, the value's tuple."""

V = TypeVar("V")


def max_bytes() -> int:
    value = os.environ.get(ENV, "").strip()
    if not value:
        return DEFAULT_BYTES
    try:
        limit = int(value)
    except ValueError:
        raise ValueError(f"{ENV} must be a number of bytes, not {value!r}") from None
    if limit < 0:
        raise ValueError(f"{ENV} must be 0 (no memo) or more, not {limit}")
    return limit


def digest(text: str, *parts: str) -> bytes:
    """A key for ``text`` read as ``parts`` say (collisions are as unlikely as BLAKE2b's at 128 bits)."""
    h = hashlib.blake2b(digest_size=16)
    for piece in (text, *parts):
        data = piece.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))  # each piece's length first: no two inputs read the same
        h.update(data)
    return h.digest()


def size_of(value: object) -> int:
    """Bytes held by a value made of tuples, dataclass instances with slots and strings (what detectors return)."""
    total = sys.getsizeof(value)
    if isinstance(value, tuple | list):
        return total + sum(size_of(v) for v in value)
    for name in getattr(type(value), "__slots__", ()):
        attr = getattr(value, name, None)
        if isinstance(attr, str | tuple):
            total += size_of(attr)
    return total


class ByteBoundedLRU(Generic[V]):
    """A least-recently-used map from digests to values whose estimated size stays under ``limit`` bytes."""

    def __init__(self, limit: int | None = None, weigh: Callable[[V], int] = size_of) -> None:
        """``weigh``: the bytes a value holds, or an upper bound of them (:func:`size_of` measures any value)."""
        self._limit = limit
        self._weigh = weigh
        self._entries: OrderedDict[bytes, tuple[V, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    @property
    def limit(self) -> int:
        if self._limit is None:
            self._limit = max_bytes()
        return self._limit

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[0]

    def put(self, key: bytes, value: V) -> None:
        size = _ENTRY_OVERHEAD + len(key) + self._weigh(value)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            if size > self.limit:
                return  # larger than the whole memo: never kept
            self._entries[key] = (value, size)
            self.bytes += size
            while self.bytes > self.limit:
                _, (_, dropped) = self._entries.popitem(last=False)
                self.bytes -= dropped

    def clear(self, limit: int | None = None) -> None:
        """Forget everything; ``limit`` replaces the bound (else it is read again from the environment)."""
        with self._lock:
            self._entries.clear()
            self.bytes = self.hits = self.misses = 0
            self._limit = limit
