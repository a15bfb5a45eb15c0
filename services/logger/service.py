"""The logger: consumes request, response and violation events and writes them to ClickHouse in batches.

A batch is acknowledged to the bus only after its insert returned, so a logger that dies re-reads the batch; the
insert carries a deterministic deduplication token and the tables collapse repeated rows, so nothing is doubled.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram

from plumbing.bus.base import Bus, Delivery, Subscription
from plumbing.store.base import Store
from schemas import topics
from schemas.events import DeadLetter, RequestEvent, ResponseEvent, ViolationEvent
from services.logger.rows import interaction_rows, violation_row

log = logging.getLogger(__name__)
GROUP = "warden-logger"


def dedup_token(table: str, keys: list[str]) -> str:
    digest = hashlib.blake2b("\n".join(keys).encode(), digest_size=16).hexdigest()
    return f"{table.split('.')[-1]}-{digest}"


class LoggerService:
    def __init__(
        self,
        bus: Bus,
        store: Store,
        registry: CollectorRegistry,
        max_batch: int = 5000,
        max_wait_s: float = 0.2,
        group: str = GROUP,
    ) -> None:
        self._bus = bus
        self._store = store
        self._events = Counter("warden_logger_events_total", "Events stored by the logger", registry=registry)
        self._rows = Counter("warden_logger_rows_total", "Rows written by the logger", ("table",), registry=registry)
        self._dead = Counter(
            "warden_logger_dead_letters_total", "Events sent to the dead-letter topic", registry=registry
        )
        self._insert = Histogram(
            "warden_logger_insert_seconds", "Duration of one batch insert", ("table",), registry=registry
        )
        self.subscription = Subscription(
            topics=(topics.REQUESTS, topics.RESPONSES, topics.VIOLATIONS),
            group=group,
            handler=self.handle,
            max_batch=max_batch,
            max_wait_s=max_wait_s,
        )

    def register(self) -> None:
        self._bus.subscribe(self.subscription)

    async def handle(self, batch: list[Delivery]) -> None:
        interactions: list[RequestEvent | ResponseEvent] = []
        violations: list[ViolationEvent] = []
        for delivery in batch:
            event = delivery.event
            if isinstance(event, RequestEvent | ResponseEvent):
                interactions.append(event)
            elif isinstance(event, ViolationEvent):
                violations.append(event)
            else:
                self._dead_letter(delivery, delivery.error or f"unexpected event on {delivery.topic}")
        if interactions:
            rows = interaction_rows(interactions)
            keys = [f"{e.type}:{e.interaction_id}" for e in interactions]
            await self._write("warden.interactions", rows, dedup_token("warden.interactions", keys))
        if violations:
            rows = [violation_row(v) for v in violations]
            await self._write(
                "warden.violations", rows, dedup_token("warden.violations", [v.violation_id for v in violations])
            )
        self._events.inc(len(interactions) + len(violations))

    async def _write(self, table: str, rows: list[dict], token: str) -> None:
        with self._insert.labels(table).time():
            await self._store.insert(table, rows, dedup_token=token)
        self._rows.labels(table).inc(len(rows))

    def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        self._dead.inc()
        log.warning(
            "malformed event sent to the dead-letter topic",
            extra={"fields": {"topic": delivery.topic, "reason": reason}},
        )
        payload = (delivery.raw or b"").decode("utf-8", "replace")
        self._bus.publish(
            topics.DEAD_LETTER,
            delivery.key or "",
            DeadLetter(
                topic=delivery.topic, key=delivery.key, reason=reason, payload=payload, failed_at=datetime.now(UTC)
            ),
        )
