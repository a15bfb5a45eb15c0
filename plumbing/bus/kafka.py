"""The distributed bus: Apache Kafka through aiokafka.

Publishing never waits on the broker: ``publish`` hands the event to ``KafkaPublisher`` (plumbing/bus/publisher.py),
which delivers it, keeping what the broker has not acknowledged in a write-ahead log on disk.

Consumers read batches, hand them to their handler, and commit the batch's offsets only after the handler returned
(its effect is durable); a failing handler gets the same batch again after a back-off. The next batch is fetched
while earlier ones are handled (``Subscription.max_in_flight`` handlers at once), and batches are committed in order.
Payloads are decoded in the handler's task (``dispatch.deliver``), so decoding too overlaps the fetch of the next
batch; one that does not decode goes to the dead-letter topic and its offset is committed with its batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry, Gauge
from pydantic import BaseModel

from plumbing.bus.base import Delivery, Subscription
from plumbing.bus.dispatch import deliver
from plumbing.bus.publisher import BUS_DEFAULTS, MAX_MESSAGE_BYTES, KafkaPublisher

log = logging.getLogger(__name__)
FETCH_MAX_BYTES = 64 * 1024 * 1024
BATCH_MAX_BYTES = 64 * 1024 * 1024
"""A batch stops growing once its payloads reach this size, however few events that is: with large bodies,
``max_batch`` events could otherwise take gigabytes (and a few batches are held at once)."""


class KafkaBus:
    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str,
        spool_dir: Path,
        registry: CollectorRegistry,
        buffer_max_bytes: int = BUS_DEFAULTS["bus_buffer_max_bytes"].default,
        unlogged_max_bytes: int = BUS_DEFAULTS["bus_unlogged_max_bytes"].default,
        spool_max_bytes: int = BUS_DEFAULTS["bus_spool_max_bytes"].default,
        spool_flush_ms: int = BUS_DEFAULTS["bus_spool_flush_ms"].default,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.publisher = KafkaPublisher(
            bootstrap_servers,
            client_id=client_id,
            spool_dir=spool_dir,
            registry=registry,
            buffer_max_bytes=buffer_max_bytes,
            unlogged_max_bytes=unlogged_max_bytes,
            spool_max_bytes=spool_max_bytes,
            flush_ms=spool_flush_ms,
        )
        self.spilled = self.publisher.spilled
        self.dropped = self.publisher.dropped
        self.delivered = self.publisher.delivered
        self._subscriptions: list[Subscription[Any]] = []
        self._consumer_tasks: list[asyncio.Task[None]] = []
        self._stop_consumers = asyncio.Event()
        self._partition_lag: dict[tuple[str, TopicPartition], int] = {}
        self.lag = Gauge(
            "warden_consumer_lag", "Messages behind the end of each partition", ("group", "topic"), registry=registry
        )

    def publish(self, topic: str, key: str, event: BaseModel) -> None:
        self.publisher.publish(topic, key, event)

    def subscribe(self, subscription: Subscription[Any]) -> None:
        self._subscriptions.append(subscription)

    async def start(self) -> None:
        await self.publisher.start()
        loop = asyncio.get_running_loop()
        self._consumer_tasks = [loop.create_task(self._consume(sub)) for sub in self._subscriptions]

    async def stop(self, timeout: float = 3.0) -> None:
        """Stop consuming, then deliver what is waiting for up to ``timeout`` seconds: what is left is in the
        write-ahead log, delivered by the next start."""
        self._stop_consumers.set()
        if self._consumer_tasks:
            await asyncio.gather(*self._consumer_tasks, return_exceptions=True)
        await self.publisher.stop(timeout)

    def pending(self) -> int:
        return self.publisher.pending()

    # -- consuming -------------------------------------------------------------------------------------------------

    async def _consume(self, sub: Subscription[Any]) -> None:
        """Fetch the next batch while the handlers of earlier ones write (the store's inserts run off the event loop).
        Up to ``sub.max_in_flight`` handlers run at once; batches are committed in order, each once its handler and
        every earlier one returned, so a crash or a failure re-reads everything not yet durable."""
        consumer: AIOKafkaConsumer | None = None
        inflight: deque[tuple[asyncio.Task[None], _Batch]] = deque()
        backoff = 0.2
        while not self._stop_consumers.is_set():
            if consumer is None:
                consumer = self._new_consumer(sub)
                try:
                    await consumer.start()
                    backoff = 0.2
                except Exception as exc:
                    log.warning(
                        "kafka consumer cannot start; retrying",
                        extra={"fields": {"group": sub.group, "error": str(exc)}},
                    )
                    with contextlib.suppress(Exception):
                        await consumer.stop()
                    consumer = None
                    await self._pause(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
            try:
                # Fetched while earlier batches are still being written.
                fetched = await self._fetch(consumer, sub)
                failed = False
                # Commit what is done, oldest first; wait for the oldest when the pipeline is full or idle.
                while inflight and (inflight[0][0].done() or fetched is None or len(inflight) >= sub.max_in_flight):
                    task, batch = inflight.popleft()
                    if await self._settle(consumer, sub, task, batch):
                        backoff = 0.2
                        continue
                    await self._rewind(consumer, batch, inflight, fetched)
                    failed = True
                    break
                if failed:
                    await self._pause(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                if fetched is not None:
                    task = asyncio.get_running_loop().create_task(deliver(sub, fetched.deliveries, self.publish))
                    inflight.append((task, fetched))
            except Exception:
                log.exception("kafka consumer failed; restarting it", extra={"fields": {"group": sub.group}})
                # Their rows may be written, but their offsets cannot be committed: they will be read again, and the
                # store folds the repeat.
                await _finish(inflight)
                inflight.clear()
                with contextlib.suppress(Exception):
                    await consumer.stop()
                consumer = None
                await self._pause(backoff)
        if consumer is not None:
            with contextlib.suppress(Exception):
                while inflight:
                    if not await self._settle(consumer, sub, *inflight.popleft()):
                        break
            await _finish(inflight)
            with contextlib.suppress(Exception):
                await consumer.stop()

    def _new_consumer(self, sub: Subscription[Any]) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            *sub.topics,
            bootstrap_servers=self.bootstrap_servers,
            group_id=sub.group,
            client_id=f"{self.client_id}-{sub.group}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Sized for big batches: one fetch response may hold a whole batch across partitions.
            max_poll_records=sub.max_batch,
            fetch_max_bytes=FETCH_MAX_BYTES,
            max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
        )

    async def _fetch(self, consumer: AIOKafkaConsumer, sub: Subscription[Any]) -> _Batch | None:
        """Up to ``max_batch`` messages (or about ``BATCH_MAX_BYTES``), waiting at most ``max_wait_s`` for the batch
        to fill."""
        batch = _Batch()
        deadline = time.monotonic() + sub.max_wait_s
        while batch.size < sub.max_batch and batch.bytes < BATCH_MAX_BYTES and not self._stop_consumers.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 and batch.size:
                break
            fetched = await consumer.getmany(
                timeout_ms=max(int(remaining * 1000), 10), max_records=sub.max_batch - batch.size
            )
            for tp, records in fetched.items():
                batch.add(tp, records)
            if not fetched and remaining <= 0:
                break
        return batch if batch.size else None

    async def _settle(
        self, consumer: AIOKafkaConsumer, sub: Subscription[Any], task: asyncio.Task[None], batch: _Batch
    ) -> bool:
        """Wait for a batch's handler and commit its offsets if it succeeded; False if it failed."""
        try:
            await task
        except Exception:
            log.exception(
                "handler failed; the batch will be delivered again",
                extra={"fields": {"group": sub.group, "events": batch.size}},
            )
            return False
        await consumer.commit({tp: offset + 1 for tp, offset in batch.last.items()})
        for tp in batch.last:
            highwater = consumer.highwater(tp)
            if highwater is not None:
                self._partition_lag[(sub.group, tp)] = max(highwater - batch.last[tp] - 1, 0)
        for topic in {tp.topic for tp in batch.last}:
            total = sum(
                lag for (group, tp), lag in self._partition_lag.items() if group == sub.group and tp.topic == topic
            )
            self.lag.labels(sub.group, topic).set(total)
        return True

    @staticmethod
    async def _rewind(
        consumer: AIOKafkaConsumer,
        failed: _Batch,
        later: deque[tuple[asyncio.Task[None], _Batch]],
        fetched: _Batch | None,
    ) -> None:
        """Read the failed batch again, and after it every later one: those still in flight are let finish (an insert
        cannot be called back) but not committed, and the store folds their repeat."""
        position = dict(failed.first)
        await _finish(later)
        for batch in [*(b for _, b in later), *([fetched] if fetched else [])]:
            for tp, offset in batch.first.items():
                position.setdefault(tp, offset)
        later.clear()
        for tp, offset in position.items():
            consumer.seek(tp, offset)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop_consumers.wait(), seconds)


async def _finish(inflight: deque[tuple[asyncio.Task[None], _Batch]]) -> None:
    """Wait for in-flight handlers without committing their batches (they will be read again)."""
    for task, _ in inflight:
        with contextlib.suppress(Exception):
            await task


class _Batch:
    """Deliveries fetched for one handler call, with each partition's first and last offset among them."""

    __slots__ = ("bytes", "deliveries", "first", "last")

    def __init__(self) -> None:
        self.bytes = 0
        self.deliveries: list[Delivery] = []
        self.first: dict[TopicPartition, int] = {}
        self.last: dict[TopicPartition, int] = {}

    @property
    def size(self) -> int:
        return len(self.deliveries)

    def add(self, tp: TopicPartition, records: list) -> None:
        if not records:
            return
        self.first.setdefault(tp, records[0].offset)
        self.last[tp] = records[-1].offset
        self.bytes += sum(r.serialized_value_size for r in records)
        topic = tp.topic
        self.deliveries.extend(
            Delivery(topic, r.key.decode("utf-8", "replace") if r.key is not None else None, None, r.value)
            for r in records
        )
