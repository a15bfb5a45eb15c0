"""Which deployment an attempt goes to: a pure choice among the alias's targets not tried yet and available now.

The lowest priority present wins; among its targets, a weighted random choice (``weighted``), or the fewest requests
in flight from this process, weighted random among ties (``least_outstanding``)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from schemas.upstreams import Strategy


@dataclass(frozen=True, slots=True)
class Candidate:
    index: int
    """The target's position in the alias."""
    priority: int
    weight: float
    outstanding: int = 0


def pick(candidates: Sequence[Candidate], strategy: Strategy, rng: random.Random) -> Candidate | None:
    """One of ``candidates`` (those already tried or unavailable left out by the caller), or None when empty."""
    if not candidates:
        return None
    top = min(c.priority for c in candidates)
    pool = [c for c in candidates if c.priority == top]
    if strategy == "least_outstanding":
        least = min(c.outstanding for c in pool)
        pool = [c for c in pool if c.outstanding == least]
    if len(pool) == 1:
        return pool[0]
    return rng.choices(pool, weights=[c.weight for c in pool])[0]
