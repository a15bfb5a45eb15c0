"""The distributed bus: Apache Kafka through aiokafka.

Publishing never waits on the broker: ``publish`` appends to an in-memory buffer and returns; a background task sends
from it with an idempotent, acks=all, compressed producer. While the broker is away (down at start, or gone
mid-load), the buffer keeps a bounded number of events and the excess is spilled to a spool on disk, replayed once
the broker is back. Only when the spool is full too are events dropped, and counted.

Consumers read batches, hand them to their handler, and commit the batch's offsets only after the handler returned
(its effect is durable); a failing handler gets the same batch again after a back-off. The next batch is fetched
while earlier ones are handled (``Subscription.max_in_flight`` handlers at once), and batches are committed in order.
A payload that does not decode is handed over as a ``Delivery`` with ``error`` set, for the handler to dead-letter; a
subscription that does not decode gets every payload as it came (``raw``) and validates it itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import BaseModel, ValidationError

from plumbing.bus.base import Delivery, Subscription
from plumbing.bus.spool import Record, Spool
from schemas.events import TOPIC_MODELS

log = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
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
        buffer_limit: int = 20_000,
        hard_limit: int = 500_000,
        spool_max_bytes: int = 2 * 1024**3,
        send_batch: int = 1000,
        delivery_timeout_ms: int = 10_000,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self._buffer: deque[tuple[str, str, BaseModel | bytes]] = deque()
        self._buffer_limit = buffer_limit
        self._hard_limit = hard_limit
        self._spool = Spool(spool_dir, spool_max_bytes)
        self._send_batch = send_batch
        self._delivery_timeout_ms = delivery_timeout_ms
        self._wakeup = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._subscriptions: list[Subscription] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._consumer_tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._stop_consumers = asyncio.Event()
        self._partition_lag: dict[tuple[str, TopicPartition], int] = {}
        self.buffered = Gauge(
            "warden_bus_buffered_events", "Events waiting in memory for the broker", registry=registry
        )
        self.buffered.set_function(lambda: len(self._buffer))
        self.spooled_bytes = Gauge(
            "warden_bus_spooled_bytes", "Bytes of events spilled to disk, not yet delivered", registry=registry
        )
        self.spilled = Counter("warden_bus_spilled_events_total", "Events spilled to the disk spool", registry=registry)
        self.dropped = Counter(
            "warden_bus_dropped_events_total", "Events dropped: buffer and spool both full", registry=registry
        )
        self.delivered = Counter(
            "warden_bus_delivered_events_total", "Events acknowledged by the broker", ("topic",), registry=registry
        )
        self.lag = Gauge(
            "warden_consumer_lag", "Messages behind the end of each partition", ("group", "topic"), registry=registry
        )

    # -- publishing ------------------------------------------------------------------------------------------------

    def publish(self, topic: str, key: str, event: BaseModel) -> None:
        if len(self._buffer) >= self._hard_limit:
            self.dropped.inc()
            return
        self._buffer.append((topic, key, event))
        if len(self._buffer) == 1 or len(self._buffer) >= self._send_batch:
            self._wakeup.set()

    def subscribe(self, subscription: Subscription) -> None:
        self._subscriptions.append(subscription)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._send_loop()), loop.create_task(self._spill_loop())]
        self._consumer_tasks = [loop.create_task(self._consume(sub)) for sub in self._subscriptions]

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop consuming, then deliver what is buffered (or spill it to disk if the broker is away)."""
        self._stop_consumers.set()
        if self._consumer_tasks:
            await asyncio.gather(*self._consumer_tasks, return_exceptions=True)
        self._stopping = True
        self._wakeup.set()
        sender = self._tasks[0] if self._tasks else None
        if sender is not None:
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(sender), timeout)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._buffer:
            self._spill(len(self._buffer))
        if self._producer is not None:
            # aiokafka's stop() waits for ever on a dead broker; what it still held is in the spool already.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._producer.stop(), 10)
            self._producer = None

    def pending(self) -> int:
        return len(self._buffer)

    async def _connect(self) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self.client_id,
            enable_idempotence=True,
            acks="all",
            compression_type="zstd",
            linger_ms=5,
            max_batch_size=1024 * 1024,
            max_request_size=MAX_MESSAGE_BYTES,
            request_timeout_ms=self._delivery_timeout_ms,
        )
        try:
            await producer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 10)
            raise
        return producer

    async def _send_loop(self) -> None:
        backoff = 0.2
        while True:
            if self._producer is None:
                try:
                    self._producer = await self._connect()
                    log.info("connected to kafka", extra={"fields": {"bootstrap": self.bootstrap_servers}})
                    backoff = 0.2
                except Exception as exc:
                    if self._stopping:
                        return
                    log.warning(
                        "kafka unavailable, buffering events",
                        extra={"fields": {"error": str(exc), "buffered": len(self._buffer)}},
                    )
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
            try:
                if self._spool:
                    await self._replay_spool()
                    continue
                if not self._buffer:
                    if self._stopping:
                        return
                    self._wakeup.clear()
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), 0.5)
                    continue
                batch = [self._buffer.popleft() for _ in range(min(self._send_batch, len(self._buffer)))]
                failed = await self._send([(t, k, _encode(e)) for t, k, e in batch])
                if failed:
                    self._spool_records(failed)
                    await self._reconnect()
            except Exception:
                log.exception("kafka producer failed; reconnecting")
                await self._reconnect()

    async def _send(self, records: list[Record]) -> list[Record]:
        """Send records and wait for the broker's acknowledgements; returns the ones that were not delivered."""
        assert self._producer is not None
        futures = []
        for topic, key, payload in records:
            try:
                futures.append(await self._producer.send(topic, payload, key=key.encode()))
            except Exception as exc:  # the accumulator refused it (closed, timed out, too large)
                futures.append(exc)
        failed: list[Record] = []
        for record, future in zip(records, futures, strict=True):
            if isinstance(future, Exception):
                failed.append(record)
                continue
            try:
                await future
                self.delivered.labels(record[0]).inc()
            except Exception:
                failed.append(record)
        return failed

    async def _replay_spool(self) -> None:
        oldest = self._spool.oldest()
        if oldest is None:
            return
        path, records = oldest
        failed = await self._send(records)
        if failed:
            await self._reconnect()
            return
        path.unlink(missing_ok=True)
        self.spooled_bytes.set(self._spool.size())

    async def _reconnect(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 10)
        await asyncio.sleep(0.5)

    async def _spill_loop(self) -> None:
        """Keeps the in-memory buffer bounded while the broker is slow or away."""
        while True:
            await asyncio.sleep(0.1)
            excess = len(self._buffer) - self._buffer_limit
            if excess > 0:
                self._spill(excess)

    def _spill(self, count: int) -> None:
        taken = [self._buffer.popleft() for _ in range(min(count, len(self._buffer)))]
        self._spool_records([(t, k, _encode(e)) for t, k, e in taken])

    def _spool_records(self, records: list[Record]) -> None:
        kept = self._spool.append(records)
        self.spilled.inc(kept)
        if kept < len(records):
            self.dropped.inc(len(records) - kept)
            log.error("event spool is full; events dropped", extra={"fields": {"dropped": len(records) - kept}})
        self.spooled_bytes.set(self._spool.size())

    # -- consuming -------------------------------------------------------------------------------------------------

    async def _consume(self, sub: Subscription) -> None:
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
                # Fetched (and decoded, if the subscription decodes) while earlier batches are still being written.
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
                    task = asyncio.get_running_loop().create_task(sub.handler(fetched.deliveries))
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

    def _new_consumer(self, sub: Subscription) -> AIOKafkaConsumer:
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

    async def _fetch(self, consumer: AIOKafkaConsumer, sub: Subscription) -> _Batch | None:
        """Up to ``max_batch`` messages (or about ``BATCH_MAX_BYTES``), waiting at most ``max_wait_s`` for the batch
        to fill."""
        batch = _Batch(sub.decode)
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
        self, consumer: AIOKafkaConsumer, sub: Subscription, task: asyncio.Task[None], batch: _Batch
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

    __slots__ = ("bytes", "decode", "deliveries", "first", "last")

    def __init__(self, decode: bool) -> None:
        self.decode = decode
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
        if self.decode:
            self.deliveries.extend(_decode(topic, r.key, r.value) for r in records)
        else:
            self.deliveries.extend(
                Delivery(topic, r.key.decode("utf-8", "replace") if r.key is not None else None, None, r.value)
                for r in records
            )


def _encode(event: BaseModel | bytes) -> bytes:
    return event if isinstance(event, bytes) else event.model_dump_json().encode()


def _decode(topic: str, key: bytes | None, value: bytes | None) -> Delivery:
    text_key = key.decode("utf-8", "replace") if key is not None else None
    model = TOPIC_MODELS.get(topic)
    if model is None:
        return Delivery(topic, text_key, None, value, f"no event model for topic {topic}")
    try:
        return Delivery(topic, text_key, model.model_validate_json(value or b""), value)
    except ValidationError as exc:
        return Delivery(topic, text_key, None, value, f"invalid {model.__name__}: {exc.errors()[:3]}")
    except ValueError as exc:
        return Delivery(topic, text_key, None, value, f"undecodable payload: {exc}")
