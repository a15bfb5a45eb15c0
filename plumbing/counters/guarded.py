"""What a limit does when its counters cannot be reached: fail open (admit, uncounted) or fail closed (refuse).

The mode is per kind of limit (``budget``, ``rate``: the counter name's first segment, e.g. ``budget:agent:a1:…``);
a kind with no mode given fails closed. A reservation whose store is unavailable is refused if any of its kinds
fails closed, else admitted with an empty reservation (nothing to settle). Each decision is counted in
``warden_counter_store_unavailable_total{kind,mode}``; a settle or release that could not be applied (the counters
keep the reservation until its window ends) in ``warden_counter_store_lost_updates_total{kind}``.

After a failure the store is left alone for ``pause_s`` (the mode decides at once, no request waits for a timeout),
then tried again by the next request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter

from plumbing.counters.base import Charge, Counters, CountersUnavailable, Refusal, Reservation

log = logging.getLogger(__name__)

OTHER_KIND = "other"
T = TypeVar("T")


class FailMode(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Unavailable:
    """Refused because the store could not answer and this charge's kind fails closed."""

    charge: Charge
    reason: str


def kind_of(counter: str) -> str:
    return counter.split(":", 1)[0]


def decide(kinds: Sequence[str], modes: Mapping[str, FailMode]) -> FailMode:
    """Closed if any kind is (an unknown kind is); open only when every kind is."""
    return FailMode.OPEN if all(modes.get(k) is FailMode.OPEN for k in kinds) else FailMode.CLOSED


class CounterStoreMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.unavailable = Counter(
            "warden_counter_store_unavailable",
            "Reservations the counter store could not answer, by kind of limit and what was done (open: admitted)",
            ("kind", "mode"),
            registry=registry,
        )
        self.lost_updates = Counter(
            "warden_counter_store_lost_updates",
            "Settles and releases the counter store could not apply (the reservation stays counted)",
            ("kind",),
            registry=registry,
        )


class GuardedCounters:
    def __init__(
        self,
        store: Counters,
        modes: Mapping[str, FailMode],
        metrics: CounterStoreMetrics,
        *,
        pause_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self._modes = dict(modes)
        self._metrics = metrics
        self._pause = pause_s
        self._clock = clock
        self._down_until = 0.0
        self._last_failure = ""

    def _label(self, kind: str) -> str:
        # Kinds come from counter names the policy builds; still, only configured ones become label values.
        return kind if kind in self._modes else OTHER_KIND

    async def _guard(self, operation: Callable[[], Awaitable[T]]) -> T:
        if self._clock() < self._down_until:
            raise CountersUnavailable(f"not asked again yet after: {self._last_failure}")
        try:
            return await operation()
        except CountersUnavailable as exc:
            self._down_until = self._clock() + self._pause
            self._last_failure = str(exc)
            raise

    async def reserve(self, charges: Sequence[Charge]) -> Reservation | Refusal | Unavailable:
        try:
            return await self._guard(lambda: self.store.reserve(charges))
        except CountersUnavailable as exc:
            kinds = list(dict.fromkeys(kind_of(c.counter) for c in charges))
            mode = decide(kinds, self._modes)
            for kind in kinds:
                self._metrics.unavailable.labels(self._label(kind), mode.value).inc()
            if mode is FailMode.OPEN:
                log.warning("counter store unavailable, admitted uncounted (%s): %s", ",".join(kinds), exc)
                return Reservation(())
            closed = next(c for c in charges if self._modes.get(kind_of(c.counter)) is not FailMode.OPEN)
            log.warning("counter store unavailable, refused (%s): %s", kind_of(closed.counter), exc)
            return Unavailable(closed, str(exc))

    async def _update(self, reservation: Reservation, operation: Callable[[], Awaitable[None]]) -> None:
        if reservation.empty:
            return
        try:
            await self._guard(operation)
        except CountersUnavailable as exc:
            for kind in dict.fromkeys(kind_of(c.counter) for c in reservation.charges):
                self._metrics.lost_updates.labels(self._label(kind)).inc()
            log.warning("counter store unavailable, a settle or release is lost: %s", exc)

    async def settle(self, reservation: Reservation, actual: dict[str, int]) -> None:
        await self._update(reservation, lambda: self.store.settle(reservation, actual))

    async def release(self, reservation: Reservation) -> None:
        await self._update(reservation, lambda: self.store.release(reservation))

    async def used(self, counter: str) -> int:
        return await self.store.used(counter)

    async def close(self) -> None:
        await self.store.close()
