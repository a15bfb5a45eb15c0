"""A circuit breaker per deployment, in each proxy process: after ``threshold`` consecutive failures the deployment
is left alone (open) for ``cooldown_s``; then one request may probe it (half-open): its success closes the breaker,
its failure opens it again for another cool-down. A provider's own wait (``Retry-After``, rate-limit resets) rests
the deployment too, however few failures came before. Time comes from the caller (a monotonic clock), so the state
machine is tested without sleeping."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class State(IntEnum):
    """The values of ``llm_upstream_breaker_state``."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass(slots=True)
class Breaker:
    threshold: int
    cooldown_s: float
    failures: int = 0
    """Consecutive failures."""
    opened_at: float | None = None
    probing: bool = False
    """A half-open probe is under way: no other request gets through until it ends."""
    resting_until: float = 0.0
    """The provider asked not to be called before this time."""

    def state(self, now: float) -> State:
        if self.opened_at is None:
            return State.CLOSED
        return State.OPEN if now < self.opened_at + self.cooldown_s else State.HALF_OPEN

    def available(self, now: float) -> bool:
        """May a request go there now (without taking the half-open probe)?"""
        if now < self.resting_until:
            return False
        state = self.state(now)
        return state is State.CLOSED or (state is State.HALF_OPEN and not self.probing)

    def acquire(self, now: float) -> bool:
        """Take the right to send one request; in half-open, the one probe."""
        if not self.available(now):
            return False
        if self.state(now) is State.HALF_OPEN:
            self.probing = True
        return True

    def ready_at(self, now: float) -> float:
        """When a request may next go there (``now`` when it may already)."""
        at = max(now, self.resting_until)
        if self.opened_at is not None:
            at = max(at, self.opened_at + self.cooldown_s)
        return at

    def succeeded(self) -> None:
        self.failures, self.opened_at, self.probing = 0, None, False

    def failed(self, now: float, wait_s: float | None = None) -> None:
        """An attempt failed; ``wait_s``: how long the provider asked to be left alone."""
        self.failures += 1
        if wait_s:
            self.resting_until = max(self.resting_until, now + wait_s)
        if self.probing or self.failures >= self.threshold:
            self.opened_at = now
        self.probing = False

    def released(self) -> None:
        """An attempt ended neither way (the client left before it answered): let another probe through."""
        self.probing = False
