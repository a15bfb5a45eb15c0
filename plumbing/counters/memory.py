"""Counters in this process's memory: one process enforces its limits alone (``warden ingress`` without Redis), and
the reference the other stores are tested against.

Every operation runs without an ``await`` between reading and writing, so on one event loop it is atomic by
construction. Counters whose window has ended are dropped the next time they are touched, and all of them by a sweep
every ``SWEEP_EVERY`` reservations, so memory holds only the windows still open. What the counters hold is bounded
in bytes (``max_bytes``, estimated): a reservation that would open a counter beyond it raises
:class:`CountersUnavailable`, so the caller's fail-open or fail-closed decision applies, as for a store that is away.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from plumbing.counters.base import Charge, CountersUnavailable, Refusal, Reservation
from plumbing.counters.deltas import reserved_by_counter

SWEEP_EVERY = 1024
DEFAULT_MAX_BYTES = 64 * 1024**2
COUNTER_OVERHEAD_BYTES = 240
"""What one counter costs beyond its name's characters: two dict slots, the int, the float and the str header."""


def counter_bytes(counter: str) -> int:
    return COUNTER_OVERHEAD_BYTES + len(counter.encode())


class MemoryCounters:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, clock: Callable[[], float] = time.time) -> None:
        self._max_bytes = max_bytes
        self._bytes = 0
        self._clock = clock
        self._used: dict[str, int] = {}
        self._ends: dict[str, float] = {}  # counters with a window; the others never expire
        self._reserves = 0

    def _current(self, counter: str, now: float) -> int:
        end = self._ends.get(counter)
        if end is not None and now >= end:
            self._drop(counter)
            return 0
        return self._used.get(counter, 0)

    def _add(self, counter: str, delta: int, window_end: float, now: float) -> None:
        if window_end and now >= window_end:
            return  # the window is over: what it held no longer counts anywhere
        used = max(0, self._current(counter, now) + delta)
        if counter not in self._used:
            self._bytes += counter_bytes(counter)
        self._used[counter] = used
        if window_end:
            self._ends[counter] = window_end

    def _drop(self, counter: str) -> None:
        self._ends.pop(counter, None)
        if self._used.pop(counter, None) is not None:
            self._bytes -= counter_bytes(counter)

    def _sweep(self, now: float) -> None:
        for counter in [name for name, end in self._ends.items() if now >= end]:
            self._drop(counter)

    async def reserve(self, charges: Sequence[Charge]) -> Reservation | Refusal:
        now = self._clock()
        self._reserves += 1
        if self._reserves % SWEEP_EVERY == 0:
            self._sweep(now)
        pending: dict[str, int] = {}  # a counter named twice is checked with both amounts
        for charge in charges:
            used = self._current(charge.counter, now) + pending.get(charge.counter, 0)
            if used + charge.amount > charge.limit:
                return Refusal(charge, used)
            pending[charge.counter] = pending.get(charge.counter, 0) + charge.amount
        new = sum(counter_bytes(name) for name in pending if name not in self._used)
        if new and self._bytes + new > self._max_bytes:
            self._sweep(now)
            if self._bytes + new > self._max_bytes:
                raise CountersUnavailable(f"in-process counters are full ({self._max_bytes} bytes)")
        for charge in charges:
            self._add(charge.counter, charge.amount, charge.window_end, now)
        return Reservation(tuple(charges))

    async def settle(self, reservation: Reservation, actual: dict[str, int]) -> None:
        now = self._clock()
        for counter, (reserved, window_end) in reserved_by_counter(reservation).items():
            if counter in actual:
                self._add(counter, actual[counter] - reserved, window_end, now)

    async def release(self, reservation: Reservation) -> None:
        now = self._clock()
        for counter, (reserved, window_end) in reserved_by_counter(reservation).items():
            self._add(counter, -reserved, window_end, now)

    async def used(self, counter: str) -> int:
        return self._current(counter, self._clock())

    async def close(self) -> None:
        return None
