"""The contract every counter store keeps: reserve several limited amounts at once, all or none, then settle them.

A budget or a rate limit is a counter in a time window (``window_end``: the epoch second it resets at; 0 for
"never", a total). Admission reserves what a request may cost in every window that applies to it (its profile's,
its agent's, its user's, its key's budgets and rate limits) in one atomic step: either every counter stays within its
limit and all are charged, or none is and the first one that would pass its limit is named. When the request
completes, the reservation is settled with what it really cost (less, or more, than reserved); a request that never
left is released. So concurrent requests cannot overshoot a limit by more than what was admitted.

Amounts are integers in the counter's own unit (micro-dollars for budgets, requests or tokens for rate limits), so
stores add them exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Charge:
    """One amount against one limited counter."""

    counter: str
    """The counter's name, unique across the deployment, e.g. ``budget:agent:a1:month:2026-12`` (the window is part
    of the name, so a new window starts from zero)."""
    amount: int
    """What this request takes (may be 0: a check without a charge)."""
    limit: int
    """The counter must stay at or under this after the charge."""
    window_end: float
    """Epoch seconds when the counter resets (0: never); a store may drop the counter after it."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """The charge that did not fit, and how much its counter already held."""

    charge: Charge
    used: int


@dataclass(frozen=True, slots=True)
class Reservation:
    """What was charged for one admitted request, to settle or release later."""

    charges: tuple[Charge, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not self.charges


def reserved_by_counter(reservation: Reservation) -> dict[str, tuple[int, float]]:
    """Counter name → (everything the reservation took from it, its window end): a counter charged twice in one
    reservation is settled once, against the sum (``actual`` is keyed by counter name)."""
    totals: dict[str, tuple[int, float]] = {}
    for charge in reservation.charges:
        reserved, _ = totals.get(charge.counter, (0, charge.window_end))
        totals[charge.counter] = (reserved + charge.amount, charge.window_end)
    return totals


class CountersUnavailable(Exception):
    """The store could not be reached or did not answer in time: the caller decides to fail open or closed."""


class Counters(Protocol):
    async def reserve(self, charges: Sequence[Charge]) -> Reservation | Refusal:
        """Atomically add every charge, or none: a :class:`Refusal` names the first charge that would pass its
        limit. Raises :class:`CountersUnavailable` when the store cannot answer."""
        ...

    async def settle(self, reservation: Reservation, actual: dict[str, int]) -> None:
        """Replace each reserved amount by the actual one (``actual`` by counter name; a counter left out keeps its
        reservation). Never refuses: what was spent is spent, even beyond the limit."""
        ...

    async def raise_to(self, counts: dict[str, tuple[int, float]]) -> int:
        """Bring each counter (name → (amount, window end)) up to at least its amount, never lower it: what is
        known to be spent already (read back from the store) without forgetting what was reserved since. Returns how
        many counters were set (a store out of room stops early). Raises :class:`CountersUnavailable`."""
        ...

    async def release(self, reservation: Reservation) -> None:
        """Give back everything reserved (the request never reached the provider)."""
        ...

    async def used(self, counter: str) -> int:
        """What the counter holds now (0 when unknown or expired)."""
        ...

    async def close(self) -> None: ...
