"""The logger: consumes request, response and violation events and writes them to ClickHouse in batches.

A batch is acknowledged to the bus only after its insert returned, so a logger that dies re-reads the batch; the
insert carries a deterministic deduplication token and the tables collapse repeated rows, so nothing is doubled.
Its subscription decodes each event into its row (``intake``), from the JSON payload without building the model
where it can: building the models was its largest cost. What does not decode, the bus dead-letters. The next batch is
read and turned into rows while the previous one is written.
"""

from __future__ import annotations

import hashlib

from prometheus_client import CollectorRegistry, Counter, Histogram

from plumbing.bus.base import Bus, Subscription
from plumbing.store.base import Store
from schemas import topics
from schemas.folding import fold_by_interaction
from services.logger import intake
from services.logger.intake import Record
from services.logger.rows import Row
from services.logger.settings import LoggerBatching


def dedup_token(table: str, keys: list[str]) -> str:
    digest = hashlib.blake2b("\n".join(keys).encode(), digest_size=16).hexdigest()
    return f"{table.split('.')[-1]}-{digest}"


_BATCHING = LoggerBatching.model_fields
"""The group and batching defaults live with the settings, so a logger built without them acts as `warden serve`'s."""
GROUP: str = _BATCHING["logger_group"].default


class LoggerService:
    def __init__(
        self,
        bus: Bus,
        store: Store,
        registry: CollectorRegistry,
        max_batch: int = _BATCHING["logger_max_batch"].default,
        max_wait_s: float = _BATCHING["logger_max_wait_s"].default,
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
            (topics.REQUESTS, topics.RESPONSES, topics.VIOLATIONS),
            intake.decode,
            self.handle,
            group=group,
            max_batch=max_batch,
            max_wait_s=max_wait_s,
            # Two batches at once: one being written (chDB works on the other core) while the next becomes rows.
            max_in_flight=2,
            on_dead_letter=lambda _: self._dead.inc(),
        )

    def register(self) -> None:
        self._bus.subscribe(self.subscription)

    async def handle(self, records: list[Record]) -> None:
        interactions: list[Row] = []
        keys: list[str] = []
        violations: dict[str, Row] = {}  # one row per violation: a batch is written without an insert-time merge
        for half, row in records:
            if half == "violation":
                violations[row["violation_id"]] = row
            else:
                interactions.append(row)
                keys.append(f"{half}:{row['interaction_id']}")
        if interactions:
            await self._write(
                "warden.interactions", fold_by_interaction(interactions), dedup_token("warden.interactions", keys)
            )
        if violations:
            await self._write(
                "warden.violations", list(violations.values()), dedup_token("warden.violations", list(violations))
            )
        self._events.inc(len(records))

    async def _write(self, table: str, rows: list[Row], token: str) -> None:
        try:
            with self._insert.labels(table).time():
                await self._store.insert(table, rows, dedup_token=token)
        except Exception:
            self._failed.labels(table).inc()
            raise
        self._rows.labels(table).inc(len(rows))
