"""The logger: consumes request, response and violation events and writes them to ClickHouse in batches.

A batch is acknowledged to the bus only after its insert returned, so a logger that dies re-reads the batch; the
insert carries a deterministic deduplication token and the tables collapse repeated rows, so nothing is doubled.
It asks the bus for payloads, not models, and builds rows straight from the JSON (``intake``): building the models
was its largest cost. The next batch is read and turned into rows while the previous one is written.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram

from plumbing.bus.base import Bus, Delivery, Subscription
from plumbing.store.base import Store
from schemas import topics
from schemas.events import DeadLetter
from schemas.folding import fold_by_interaction
from services.logger.intake import to_row
from services.logger.json_rows import Row

log = logging.getLogger(__name__)
GROUP = "warden-logger"
YIELD_EVERY = 2000
"""Events turned into rows between two turns of the event loop: a big batch must not hold up the Kafka client's
heartbeats, the fetch of the next batch, or (embedded) the proxy, for the whole batch."""


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
        self._failed = Counter(
            "warden_logger_insert_failures_total",
            "Batch inserts the store refused (disk full, read-only, unreachable); the batch is retried",
            ("table",),
            registry=registry,
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
            decode=False,
            # Two batches at once: one being written (chDB works on the other core) while the next becomes rows.
            max_in_flight=2,
        )

    def register(self) -> None:
        self._bus.subscribe(self.subscription)

    async def handle(self, batch: list[Delivery]) -> None:
        interactions: list[Row] = []
        keys: list[str] = []
        violations: dict[str, Row] = {}  # one row per violation: a batch is written without an insert-time merge
        dead = 0
        for n, delivery in enumerate(batch, 1):
            row = to_row(delivery)
            if isinstance(row, str):
                self._dead_letter(delivery, row)
                dead += 1
            elif delivery.topic == topics.VIOLATIONS:
                violations[row["violation_id"]] = row
            else:
                interactions.append(row)
                keys.append(("request:" if delivery.topic == topics.REQUESTS else "response:") + row["interaction_id"])
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)
        if interactions:
            await self._write(
                "warden.interactions", fold_by_interaction(interactions), dedup_token("warden.interactions", keys)
            )
        if violations:
            await self._write(
                "warden.violations", list(violations.values()), dedup_token("warden.violations", list(violations))
            )
        self._events.inc(len(batch) - dead)

    async def _write(self, table: str, rows: list[dict], token: str) -> None:
        try:
            with self._insert.labels(table).time():
                await self._store.insert(table, rows, dedup_token=token)
        except Exception:
            self._failed.labels(table).inc()
            raise
        self._rows.labels(table).inc(len(rows))

    def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        self._dead.inc()
        log.warning(
            "malformed event sent to the dead-letter topic",
            extra={"fields": {"topic": delivery.topic, "reason": reason}},
        )
        if delivery.raw is not None:
            payload = delivery.raw.decode("utf-8", "replace")
        else:
            payload = delivery.event.model_dump_json() if delivery.event is not None else ""
        self._bus.publish(
            topics.DEAD_LETTER,
            delivery.key or "",
            DeadLetter(
                topic=delivery.topic, key=delivery.key, reason=reason, payload=payload, failed_at=datetime.now(UTC)
            ),
        )
