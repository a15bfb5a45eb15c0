"""The quarantine rule: N violations of at least a severity from one agent within a window trips it. Pure logic
over a sliding window per (profile, agent); the service decides what to do when it trips."""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta

from schemas.events import SEVERITY_RANK, ViolationEvent
from schemas.profiles import QuarantineRule


class QuarantineTracker:
    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], deque[tuple[datetime, str]]] = {}

    def observe(self, rule: QuarantineRule, violation: ViolationEvent) -> list[str] | None:
        """Count a violation; returns the violation ids that trip the rule, or None."""
        if not violation.agent_id or SEVERITY_RANK[violation.severity] < SEVERITY_RANK[rule.min_severity]:
            return None
        key = (violation.profile_id, violation.agent_id)
        window = self._windows.setdefault(key, deque())
        window.append((violation.detected_at, violation.violation_id))
        horizon = violation.detected_at - timedelta(seconds=rule.window_seconds)
        while window and window[0][0] < horizon:
            window.popleft()
        if len(window) >= rule.max_violations:
            tripped = [vid for _, vid in window]
            window.clear()
            return tripped
        return None
