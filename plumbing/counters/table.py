"""Counters in a fixed-size table of memory: one process's own (anonymous memory), or every process's that maps the
same file (``warden serve``'s proxy workers over one data directory), the atomic step guarded by an ``fcntl`` lock
on that file.

The table is an open-addressed hash table of fixed slots; a counter is found by a 16-byte BLAKE2b digest of its name
(never stored: names carry agent and user ids), within ``PROBES`` slots of its home slot. A slot whose window has
ended is free for another counter. Its size is fixed in bytes when it is made; a counter that finds no slot makes the
store unavailable for that request (the profile's ``*_store_unavailable`` decides), never an unbounded growth.

Header (64 bytes): magic, layout version, slot count, the generation it was built for (the ``warden serve`` run whose
background process filled it from the store: a proxy worker or a background process started again within the same
run keeps the counts).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import mmap
import os
import struct
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from plumbing.counters.base import Charge, CountersUnavailable, Refusal, Reservation, reserved_by_counter

MAGIC = b"WRDNCNT1"
_HEADER = struct.Struct("<8sIIq")  # magic, version, slots, generation
HEADER_BYTES = 64
_SLOT = struct.Struct("<16sdq")  # digest, window_end (epoch s, fractional: 0 never), used
VERSION = 2
"""Layout version: a file of another layout is emptied and built again (the background refills it)."""
SLOT_BYTES = _SLOT.size
PROBES = 64
"""Slots looked at from a counter's home slot: beyond them it does not fit (the table is too full)."""
_EMPTY = bytes(16)
DEFAULT_MAX_BYTES = 8 * 1024 * 1024


@functools.lru_cache(maxsize=4096)
def _digest(name: str) -> bytes:
    # Remembered: a request's counters are named again when it settles, and by the requests after it in the window.
    return hashlib.blake2b(name.encode(), digest_size=16).digest()


class CounterTable:
    """A :class:`~plumbing.counters.base.Counters` over a table of ``max_bytes`` (header included)."""

    def __init__(self, path: Path | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        """``path``: the file every process maps (None: this process's memory only)."""
        self.slots = (max_bytes - HEADER_BYTES) // SLOT_BYTES
        if self.slots < PROBES:
            raise ValueError(f"a counter table needs at least {HEADER_BYTES + PROBES * SLOT_BYTES} bytes")
        size = HEADER_BYTES + self.slots * SLOT_BYTES
        self._fd: int | None = None
        if path is None:
            self._map = mmap.mmap(-1, size)
            _HEADER.pack_into(self._map, 0, MAGIC, VERSION, self.slots, 0)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        with self._locked():
            if os.fstat(self._fd).st_size != size or not self._valid():
                os.ftruncate(self._fd, 0)  # another layout or size: start again (the background refills it)
                os.ftruncate(self._fd, size)
                self._map = mmap.mmap(self._fd, size)
                _HEADER.pack_into(self._map, 0, MAGIC, VERSION, self.slots, 0)
            else:
                self._map = mmap.mmap(self._fd, size)

    def _valid(self) -> bool:
        assert self._fd is not None
        head = os.pread(self._fd, _HEADER.size, 0)
        if len(head) < _HEADER.size:
            return False
        magic, version, slots, _ = _HEADER.unpack(head)
        return magic == MAGIC and version == VERSION and slots == self.slots

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # Held for microseconds (a few slot reads and writes): blocking is cheaper than a round trip to the loop.
        if self._fd is None:
            yield
            return
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    # -- slots -------------------------------------------------------------------------------------------------

    def _find(self, digest: bytes, now: float, create: bool) -> int:
        """The offset of the counter's slot (-1: none; with ``create``, a free slot is taken for it). Raises
        :class:`CountersUnavailable` when it must be created and no slot within reach is free."""
        mm = self._map
        home = int.from_bytes(digest[:8], "little") % self.slots
        free = -1
        for i in range(PROBES):
            offset = HEADER_BYTES + ((home + i) % self.slots) * SLOT_BYTES
            found, window_end, _ = _SLOT.unpack_from(mm, offset)
            if found == digest:
                if window_end and window_end <= now:
                    return offset if create else -1  # its window ended: the same name starts again
                return offset
            if found == _EMPTY:
                # Slots are never emptied (an ended one is reused in place), so nothing lies beyond an empty one.
                if free < 0:
                    free = offset
                break
            if free < 0 and window_end and window_end <= now:
                free = offset
        if not create:
            return -1
        if free < 0:
            raise CountersUnavailable(f"the counter table is full ({self.slots} slots); raise its size")
        return free

    def _used(self, offset: int, digest: bytes, now: float) -> int:
        found, window_end, used = _SLOT.unpack_from(self._map, offset)
        if found != digest or (window_end and window_end <= now):
            return 0
        return used

    def _add(self, digest: bytes, window_end: float, amount: int, now: float) -> None:
        offset = self._find(digest, now, create=True)
        used = self._used(offset, digest, now)
        _SLOT.pack_into(self._map, offset, digest, window_end, max(used + amount, 0))

    # -- the contract ------------------------------------------------------------------------------------------

    async def reserve(self, charges: Sequence[Charge]) -> Reservation | Refusal:
        return self.reserve_now(charges, time.time())

    def reserve_now(self, charges: Sequence[Charge], now: float) -> Reservation | Refusal:
        digests = [_digest(charge.counter) for charge in charges]
        fd = self._fd
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            # A counter named twice in one reservation is checked against everything the reservation puts on it.
            found: dict[bytes, tuple[int, int, int, float]] = {}  # digest → (offset, used before, added, window end)
            for charge, digest in zip(charges, digests, strict=True):
                if digest in found:
                    offset, before, added, _ = found[digest]
                else:
                    offset = self._find(digest, now, create=True)
                    before, added = self._used(offset, digest, now), 0
                if before + added + charge.amount > charge.limit:
                    return Refusal(charge, before + added)
                found[digest] = (offset, before, added + charge.amount, charge.window_end)
            if len({offset for offset, _, _, _ in found.values()}) == len(found):
                for digest, (offset, before, added, window_end) in found.items():
                    _SLOT.pack_into(self._map, offset, digest, window_end, before + added)
            else:  # two new counters were offered the same free slot: each is written before the next is found
                for digest, (_, _, added, window_end) in found.items():
                    self._add(digest, window_end, added, now)
        finally:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
        return Reservation(tuple(charges))

    async def settle(self, reservation: Reservation, actual: dict[str, int]) -> None:
        self._adjust(reservation, actual)

    def settle_now(self, reservation: Reservation, actual: dict[str, int]) -> None:
        """:meth:`settle` without a task: the table answers at once, and a task costs more than the settling."""
        self._adjust(reservation, actual)

    async def release(self, reservation: Reservation) -> None:
        self._adjust(reservation, {charge.counter: 0 for charge in reservation.charges})

    def _adjust(self, reservation: Reservation, actual: dict[str, int]) -> None:
        now = time.time()
        with self._locked():
            # A counter charged twice in one reservation is settled once, against the sum it took.
            for counter, (reserved, _) in reserved_by_counter(reservation).items():
                if counter not in actual:
                    continue
                digest = _digest(counter)
                offset = self._find(digest, now, create=False)
                if offset >= 0:  # else its window ended meanwhile: nothing left to correct
                    _, window_end, used = _SLOT.unpack_from(self._map, offset)
                    delta = actual[counter] - reserved
                    _SLOT.pack_into(self._map, offset, digest, window_end, max(used + delta, 0))

    async def raise_to(self, counts: dict[str, tuple[int, float]]) -> int:
        now = time.time()
        set_count = 0
        with self._locked():
            for name, (amount, window_end) in counts.items():
                digest = _digest(name)
                try:
                    offset = self._find(digest, now, create=True)
                except CountersUnavailable:
                    break
                if self._used(offset, digest, now) < amount:
                    _SLOT.pack_into(self._map, offset, digest, window_end, amount)
                set_count += 1
        return set_count

    async def used(self, counter: str) -> int:
        digest = _digest(counter)
        now = time.time()
        with self._locked():
            offset = self._find(digest, now, create=False)
            return self._used(offset, digest, now) if offset >= 0 else 0

    # -- filling it from the store (beyond the contract) ----------------------------------------------------------

    @property
    def generation(self) -> int:
        return _HEADER.unpack_from(self._map, 0)[3]

    def refill(self, counts: dict[str, tuple[int, float]], generation: int) -> int:
        """Empty the table and set each counter (name → (amount, window_end)), marking it built for
        ``generation``; returns how many were set (those that found no slot are left out, and counted as missing)."""
        now = time.time()
        set_count = 0
        with self._locked():
            self._map[HEADER_BYTES:] = bytes(len(self._map) - HEADER_BYTES)
            for name, (amount, window_end) in counts.items():
                try:
                    self._add(_digest(name), window_end, amount, now)
                    set_count += 1
                except CountersUnavailable:
                    break
            _HEADER.pack_into(self._map, 0, MAGIC, VERSION, self.slots, generation)
            self._map.flush()
        return set_count

    async def close(self) -> None:
        self._map.close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
