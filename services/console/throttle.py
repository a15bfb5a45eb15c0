"""Failed admin-token attempts, per client address: after a few, the address must wait, longer after each failure.

Kept in each console process's memory (an attacker spreading attempts over processes gains a factor of their number,
not more). The table is bounded: when full, the oldest half of the addresses is forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass

from plumbing.bounded import BoundedDict

MAX_LOCKOUT_S = 3600.0
"""The wait stops doubling here; an address quiet for this long starts again with a clean slate."""
TRACKED_ADDRESSES = 10_000
"""Addresses remembered at once: each entry is an address and two numbers, about 200 bytes, so about 2 MB."""


@dataclass(frozen=True, slots=True)
class _Record:
    failures: int
    last_failure: float
    locked_until: float


class LoginThrottle:
    def __init__(self, max_failures: int, lockout_s: float) -> None:
        self.max_failures = max(1, max_failures)
        self.lockout_s = lockout_s
        self._records: BoundedDict[_Record] = BoundedDict(TRACKED_ADDRESSES)

    def _current(self, client: str, now: float) -> _Record | None:
        record = self._records.get(client)
        if record is None or (now - record.last_failure > MAX_LOCKOUT_S and now >= record.locked_until):
            return None
        return record

    def wait_s(self, client: str, now: float) -> float:
        """Seconds until ``client`` may try again; 0 when it may now."""
        record = self._current(client, now)
        return max(0.0, record.locked_until - now) if record else 0.0

    def failed(self, client: str, now: float) -> float:
        """Count a failure; returns the wait it brings (0 while under ``max_failures``)."""
        record = self._current(client, now)
        failures = (record.failures if record else 0) + 1
        wait = 0.0
        if failures >= self.max_failures:
            wait = min(self.lockout_s * 2 ** min(failures - self.max_failures, 32), MAX_LOCKOUT_S)
        self._records.put(client, _Record(failures, now, now + wait))
        return wait

    def succeeded(self, client: str) -> None:
        if self._records.get(client) is not None:
            self._records.put(client, _Record(0, float("-inf"), float("-inf")))
