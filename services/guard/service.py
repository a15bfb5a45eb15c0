"""The guard: scores request and response events, publishes a violation per finding above the profile's threshold,
and quarantines agents whose violations trip their profile's rule."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from plumbing.bus.base import Bus, Subscription
from plumbing.config.base import ReplicatedMap
from plumbing.metrics import LabelCap
from plumbing.slowdown import slow_guard
from plumbing.threads import named_executor
from schemas import topics
from schemas.events import RequestEvent, ResponseEvent, ViolationEvent
from schemas.profiles import DEFAULT_PROFILE_ID, Profile, ProfileLookup
from schemas.quarantine import Quarantine
from services.guard.detectors import learned
from services.guard.quarantine import QuarantineTracker
from services.guard.scoring import findings_for, violations

log = logging.getLogger(__name__)
GROUP = "warden-guard"


class LearnedTierCollector(Collector):
    """What the learned tier read and left unread (``learned.BUDGET``'s counts, read at each scrape): with it on, an
    operator sees whether its CPU share and its windows per event let it read what it was asked to."""

    def collect(self) -> list[CounterMetricFamily]:
        budget = learned.BUDGET
        windows = CounterMetricFamily(
            "warden_guard_learned_windows",
            "Borderline windows of the learned tier: read, or left unread for want of its CPU share or of the "
            "event's windows (a text left unread is not memoised: read when its history comes back)",
            labels=("outcome",),
        )
        windows.add_metric(("read",), budget.read_windows)
        windows.add_metric(("over_cpu_share",), budget.skipped_windows)
        windows.add_metric(("over_event_windows",), budget.over_event_windows)
        texts = CounterMetricFamily(
            "warden_guard_learned_texts_skipped",
            "Texts the learned tier did not even look at for want of its CPU share",
        )
        texts.add_metric((), budget.skipped_texts)
        return [windows, texts]


class GuardService:
    def __init__(
        self,
        bus: Bus,
        profiles: ProfileLookup,
        quarantines: ReplicatedMap[Quarantine],
        registry: CollectorRegistry,
        agent_label_cap: int = 200,
        group: str = GROUP,
    ) -> None:
        self._bus = bus
        self._profiles = profiles
        self._quarantines = quarantines
        self._tracker = QuarantineTracker()
        self._agent_label = LabelCap(agent_label_cap)
        # Detectors are CPU work: off the event loop, which in the embedded default also serves the proxy.
        self._executor = named_executor("guard")
        self.violations_total = Counter(
            "warden_violations_total",
            "Violations published by the guard",
            ("category", "severity", "profile_id", "agent_id"),
            registry=registry,
        )
        self.scored = Counter(
            "warden_guard_events_scored_total", "Events scored by the guard", ("type",), registry=registry
        )
        self.unscored = Counter(
            "warden_guard_unscored_events_total",
            "Events the detectors failed on (each logged with its interaction id): no finding could be published",
            ("type",),
            registry=registry,
        )
        self.latency = Histogram(
            "warden_guard_event_seconds",
            "Detector time per event",
            ("type",),
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
            registry=registry,
        )
        self._violation_series: dict[tuple[str, str, str, str], Counter] = {}
        self._per_type = {
            kind: (self.latency.labels(kind), self.scored.labels(kind)) for kind in ("request", "response")
        }
        self.quarantined = Counter("warden_quarantines_total", "Agents quarantined", ("profile_id",), registry=registry)
        registry.register(LearnedTierCollector())
        self.subscription = Subscription(
            (topics.REQUESTS, topics.RESPONSES),
            RequestEvent | ResponseEvent,
            self.handle,
            group=group,
            max_batch=500,
            max_wait_s=0.05,
        )

    def register(self) -> None:
        self._bus.subscribe(self.subscription)

    async def handle(self, events: list[RequestEvent | ResponseEvent]) -> None:
        found = await asyncio.get_running_loop().run_in_executor(self._executor, self._score, events)
        for _event, profile, violations_of_event in found:
            for violation in violations_of_event:
                self._bus.publish(topics.VIOLATIONS, violation.interaction_id, violation)
                self._violation_counter(violation).inc()
                await self._maybe_quarantine(profile, violation)

    def _score(self, events: list[RequestEvent | ResponseEvent]) -> list[tuple]:
        slow_guard()
        out = []
        for event in events:
            profile = self._profiles(event.profile_id) or self._profiles(DEFAULT_PROFILE_ID)
            if profile is None:
                continue
            started = time.perf_counter()
            try:
                found = violations(event, profile, findings_for(event, profile))
            except Exception:  # one unreadable event must not stop the stream; counted, so that it is not silent
                log.exception("could not score an event", extra={"fields": {"interaction_id": event.interaction_id}})
                self.unscored.labels(event.type).inc()
                found = []
            latency, scored = self._per_type[event.type]
            latency.observe(time.perf_counter() - started)
            scored.inc()
            out.append((event, profile, found))
        return out

    def _violation_counter(self, violation: ViolationEvent) -> Counter:
        """The series for a violation, looked up once: ``labels()`` costs more than the increment."""
        labels = (violation.category, violation.severity, violation.profile_id, self._agent_label(violation.agent_id))
        series = self._violation_series.get(labels)
        if series is None:
            series = self._violation_series[labels] = self.violations_total.labels(*labels)
        return series

    async def _maybe_quarantine(self, profile: Profile, violation: ViolationEvent) -> None:
        rule = profile.guard.quarantine
        if rule is None:
            return
        tripped = self._tracker.observe(rule, violation)
        if tripped is None:
            return
        now = datetime.now(UTC)
        decision = Quarantine(
            profile_id=violation.profile_id,
            agent_id=violation.agent_id,
            created_at=now,
            expires_at=now + timedelta(seconds=rule.duration_seconds),
            violations=tripped,
            reason=f"{len(tripped)} violations of severity {rule.min_severity} or worse within {rule.window_seconds} s",
        )
        await self._quarantines.put(decision.key, decision)
        self.quarantined.labels(violation.profile_id).inc()
        log.warning(
            "agent quarantined",
            extra={
                "fields": {"profile_id": decision.profile_id, "agent_id": decision.agent_id, "reason": decision.reason}
            },
        )

    def close(self) -> None:
        self._executor.shutdown(wait=True)
