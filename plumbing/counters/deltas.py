"""What a reservation holds per counter: settle and release work per counter, whatever the charges were."""

from __future__ import annotations

from plumbing.counters.base import Reservation


def reserved_by_counter(reservation: Reservation) -> dict[str, tuple[int, float]]:
    """Counter name → (everything the reservation took from it, its window end). A counter charged twice in one
    reservation is settled once, against the sum (``actual`` is keyed by counter name)."""
    totals: dict[str, tuple[int, float]] = {}
    for charge in reservation.charges:
        reserved, _ = totals.get(charge.counter, (0, charge.window_end))
        totals[charge.counter] = (reserved + charge.amount, charge.window_end)
    return totals
