"""A replicated map over a compacted Kafka topic: every instance reads the whole topic and follows it.

Writes produce the new value (or a tombstone) keyed by the map key and wait for the broker's acknowledgement; every
instance, the writer included, applies changes as it reads them back, so all converge on the topic's order. A local
file copy (``FileMap``) keeps the last state known for restarts while the broker is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Generic

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from plumbing.config.base import Listener, M
from plumbing.config.file_map import FileMap

log = logging.getLogger(__name__)


class KafkaMap(Generic[M]):
    def __init__(
        self, bootstrap_servers: str, topic: str, model: type[M], cache_path: Path, catch_up_timeout_s: float = 10.0
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.model = model
        self._local = FileMap(cache_path, model)
        self._catch_up_timeout_s = catch_up_timeout_s
        self._producer: AIOKafkaProducer | None = None
        self._reader: asyncio.Task[None] | None = None
        self._caught_up = asyncio.Event()
        self._applied: dict[str, asyncio.Event] = {}

    def get(self, key: str) -> M | None:
        return self._local.get(key)

    def values(self) -> list[M]:
        return self._local.values()

    def listen(self, listener: Listener) -> None:
        self._local.listen(listener)

    async def put(self, key: str, value: M) -> None:
        await self._write(key, value.model_dump_json().encode())

    async def delete(self, key: str) -> bool:
        if self._local.get(key) is None:
            return False
        await self._write(key, None)
        return True

    async def _write(self, key: str, payload: bytes | None) -> None:
        if self._producer is None:
            producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers, acks="all", enable_idempotence=True)
            await producer.start()
            self._producer = producer
        seen = self._applied.setdefault(key, asyncio.Event())
        seen.clear()
        await self._producer.send_and_wait(self.topic, payload, key=key.encode())
        # Read-your-writes: return once this instance's copy shows the change too.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(seen.wait(), 5)

    async def start(self) -> None:
        self._reader = asyncio.get_running_loop().create_task(self._follow())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._caught_up.wait(), self._catch_up_timeout_s)
        if not self._caught_up.is_set():
            log.warning(
                "configuration topic not read yet; serving the last known copy", extra={"fields": {"topic": self.topic}}
            )

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._producer.stop(), 10)

    async def _follow(self) -> None:
        while True:
            # Subscribed without a group: the consumer takes every partition of the topic as soon as it knows them
            # (``topics()`` would not do: it fetches metadata without updating what the consumer knows).
            consumer = AIOKafkaConsumer(
                self.topic,
                bootstrap_servers=self.bootstrap_servers,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            )
            try:
                await consumer.start()
                while not consumer.assignment():
                    await asyncio.sleep(0.1)  # the topic may be created a moment later
                assigned = sorted(consumer.assignment())
                await consumer.seek_to_beginning(*assigned)
                ends = await consumer.end_offsets(assigned)
                fresh: dict[str, M | None] = {}
                while True:
                    batch = await consumer.getmany(timeout_ms=200)
                    for records in batch.values():
                        for record in records:
                            key = record.key.decode() if record.key else ""
                            value = None if record.value is None else self.model.model_validate_json(record.value)
                            if self._caught_up.is_set():
                                self._apply(key, value)
                            else:
                                fresh[key] = value
                    if not self._caught_up.is_set() and all(
                        [await consumer.position(tp) >= ends[tp] for tp in assigned]  # a list: awaits run in order
                    ):
                        self._replace(fresh)
                        self._caught_up.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "configuration topic unavailable; retrying",
                    extra={"fields": {"topic": self.topic, "error": str(exc)}},
                )
                await asyncio.sleep(1)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()

    def _replace(self, fresh: dict[str, M | None]) -> None:
        """The topic's full state, read once at start, replaces the cached copy."""
        for key in [known for known in self._local.keys() if known not in fresh]:  # noqa: SIM118
            self._apply(key, None)
        for key, value in fresh.items():
            if value is not None or self._local.get(key) is not None:
                self._apply(key, value)

    def _apply(self, key: str, value: M | None) -> None:
        self._local.apply(key, value)
        event = self._applied.get(key)
        if event is not None:
            event.set()
