"""A replicated map over a compacted Kafka topic: every instance reads the whole topic and follows it.

Writes produce the new value (or a tombstone) keyed by the map key and wait for the broker's acknowledgement; every
instance, the writer included, applies changes as it reads them back, so all converge on the topic's order. A local
copy (``FileMap``) keeps the last state known: ``start`` serves it at once and never waits for the broker; the topic
is read in the background, its full state replaces the copy once read, and every later change is applied as it
arrives (the consumer waits on the broker, so a change reaches every instance within moments).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Generic

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from plumbing.bus.publisher import started
from plumbing.bus.topics_admin import compacted_topic_partitions
from plumbing.config.base import Listener, M
from plumbing.config.file_map import FileMap

log = logging.getLogger(__name__)
IDLE_FETCH_WAIT_MS = 5000
"""How long the broker holds a fetch of a configuration topic that has nothing new. A record that arrives ends the
wait at once (the fetch asks for one byte), so this costs no replication latency; it only sets how often an idle
process asks again: with aiokafka's 500 ms, every process polled each of its configuration topics twice a second."""
READ_YOUR_WRITES_S = 5.0
"""How long ``put`` waits for its own change to come back from the topic."""


class KafkaMap(Generic[M]):
    def __init__(self, bootstrap_servers: str, topic: str, model: type[M], cache_path: Path) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.model = model
        self._local = FileMap(cache_path, model, fsync=False)  # a cache: the topic is the record
        self._producer: AIOKafkaProducer | None = None
        self._reader: asyncio.Task[None] | None = None
        self.caught_up = asyncio.Event()
        """Set once the whole topic has been read (until then the local copy is served)."""
        self._positions: dict[TopicPartition, int] = {}
        """The next offset to read, per partition: kept across reconnections."""
        self._advanced = asyncio.Event()
        """Set (and replaced) each time the reader has taken a batch."""

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
            self._producer = await started(
                AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers, acks="all", enable_idempotence=True)
            )
        written = await self._producer.send_and_wait(self.topic, payload, key=key.encode())
        # Read-your-writes: return once this instance's copy has read past the change.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                self._read_past(TopicPartition(self.topic, written.partition), written.offset), READ_YOUR_WRITES_S
            )

    async def _read_past(self, tp: TopicPartition, offset: int) -> None:
        while not (self.caught_up.is_set() and self._positions.get(tp, 0) > offset):
            await self._advanced.wait()

    async def start(self) -> None:
        self._reader = asyncio.get_running_loop().create_task(self._follow())

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._producer is not None:
            # Bounded: with the broker away aiokafka's stop() would wait for ever; a write in progress has failed.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._producer.stop(), 2)
            self._producer = None
        self._local.close()

    async def _follow(self) -> None:
        """Read the topic from the beginning, then follow it; after a broker outage carry on where it left off."""
        positions = self._positions
        fresh: dict[str, M] = {}
        backoff = 0.2
        while True:
            consumer: AIOKafkaConsumer | None = None
            try:
                partitions = await compacted_topic_partitions(
                    self.bootstrap_servers, self.topic, client_id=f"warden-config-{self.topic}"
                )
                consumer = AIOKafkaConsumer(
                    bootstrap_servers=self.bootstrap_servers,
                    enable_auto_commit=False,
                    auto_offset_reset="earliest",
                    fetch_max_wait_ms=IDLE_FETCH_WAIT_MS,
                )
                await consumer.start()
                assigned = [TopicPartition(self.topic, p) for p in partitions]
                consumer.assign(assigned)
                for tp in assigned:
                    if tp in positions:
                        consumer.seek(tp, positions[tp])
                    else:
                        await consumer.seek_to_beginning(tp)
                        positions[tp] = await consumer.position(tp)  # the first offset compaction left
                ends = await consumer.end_offsets(assigned) if not self.caught_up.is_set() else {}
                backoff = 0.2
                while True:
                    if not self.caught_up.is_set() and all(positions.get(tp, 0) >= ends[tp] for tp in assigned):
                        self._local.replace(fresh)
                        fresh = {}
                        self.caught_up.set()
                        self._pulse()
                    batch = await consumer.getmany(timeout_ms=1000)
                    for tp, records in batch.items():
                        for record in records:
                            self._take(record.key, record.value, fresh)
                            positions[tp] = record.offset + 1
                    if batch:
                        self._pulse()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "configuration topic unavailable; serving the local copy and retrying",
                    extra={"fields": {"topic": self.topic, "error": str(exc)}},
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                if consumer is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(consumer.stop(), 2)

    def _take(self, raw_key: bytes | None, raw_value: bytes | None, fresh: dict[str, M]) -> None:
        key = raw_key.decode() if raw_key else ""
        try:
            value = None if raw_value is None else self.model.model_validate_json(raw_value)
        except ValueError as exc:
            # One bad record must not stop the map: the key keeps its last good value.
            log.error("unreadable configuration record skipped", extra={"fields": {"topic": self.topic, "key": key}})
            log.debug("unreadable configuration record", exc_info=exc)
            return
        if not self.caught_up.is_set():
            # Until the whole topic is read it is collected aside: the copy keeps serving the last known state.
            if value is None:
                fresh.pop(key, None)
            else:
                fresh[key] = value
            return
        self._local.apply(key, value)

    def _pulse(self) -> None:
        advanced, self._advanced = self._advanced, asyncio.Event()
        advanced.set()
