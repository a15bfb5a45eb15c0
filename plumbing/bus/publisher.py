"""The Kafka bus's producing side: events reach the broker, or a write-ahead log on disk, never only memory for long.

``publish`` appends to memory and returns: the request path never waits on the broker or the disk. A sender task
delivers events in order with an idempotent, acks=all, compressed producer. A log task wakes every
``flush_ms / 2``: every event published at least ``flush_ms / 2`` earlier and not yet acknowledged by the broker is
appended to the write-ahead log (``Spool``) and fsynced, in one write (group commit) from a worker thread. So an
event is acknowledged by Kafka or on disk at most ``flush_ms`` (plus the fsync) after it was published: a crash
(``kill -9``, power loss) loses at most the events of that last window. While the broker answers, events are
acknowledged within milliseconds and the log stays empty.

While the broker is away, memory keeps up to ``buffer_max_bytes`` of logged events; older ones are dropped from
memory and read back from the log when the broker returns. A segment of the log is deleted once all its events are
acknowledged; a restart replays what is left (an event acknowledged just before a crash may then reach the broker
twice: the consumers fold repeats by interaction id). Only when memory and the log (``max_bytes``) are both full are
events dropped, and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from pathlib import Path

from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import BaseModel

from plumbing.bus.dispatch import Turn
from plumbing.bus.spool import Spool
from plumbing.settings import CommonSettings

log = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
SEND_MAX_BYTES = 8 * 1024 * 1024
"""Events read back from the log per send, at most (about)."""


_BODY_FIELDS = ("request_received", "request_sent", "response_body", "answer_text", "payload")
"""The fields of the events that grow with what clients and upstreams send (the rest are ids, numbers, short text)."""
_EVENT_OVERHEAD = 2048
_DERIVED_FACTOR = 3
"""What a body's parsed forms (a request's conversation view, an answer's tool calls) hold beside it, as a multiple
of the body: Python objects take several times the bytes of the JSON they came from."""


_BODY_FIELDS_OF: dict[type[BaseModel], tuple[str, ...]] = {}
"""Which of ``_BODY_FIELDS`` each event class has: asking a pydantic model for a field it lacks raises (and catches)
an AttributeError, which cost more than the rest of ``weight``."""


def weight(event: BaseModel) -> int:
    """An estimate, in bytes, of the memory an event not yet serialised holds, in a few attribute reads (it runs in
    the request path): its bodies and what was parsed from them, plus a fixed overhead."""
    kind = type(event)
    names = _BODY_FIELDS_OF.get(kind)
    if names is None:
        names = _BODY_FIELDS_OF[kind] = tuple(name for name in _BODY_FIELDS if name in kind.model_fields)
    total = _EVENT_OVERHEAD
    for name in names:
        value = getattr(event, name)
        if isinstance(value, str):
            total += len(value) * _DERIVED_FACTOR
    return total


class _Entry:
    __slots__ = ("acked", "born", "counted", "event", "key", "logged", "payload", "seq", "topic", "weight")

    def __init__(self, seq: int, topic: str, key: str, event: BaseModel | None, payload: bytes | None) -> None:
        self.weight = 0
        """Its estimated bytes while it waits for the log task (``young_bytes``)."""
        self.seq = seq
        self.topic = topic
        self.key = key
        self.event = event
        self.payload = payload
        self.born = time.monotonic()
        self.logged = False
        self.acked = False
        self.counted = False  # its bytes are in the memory total

    def encoded(self) -> bytes:
        if self.payload is None:
            assert self.event is not None
            self.payload = self.event.__pydantic_serializer__.to_json(self.event)  # model_dump_json(), as bytes
            self.event = None
        return self.payload


BUS_DEFAULTS = CommonSettings.model_fields
"""The event buffer's and log's limits live in the settings; a bus built without them gets the same values."""


class KafkaPublisher:
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
        flush_ms: int = BUS_DEFAULTS["bus_spool_flush_ms"].default,
        send_batch: int = 1000,
        delivery_timeout_ms: int = 10_000,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.spool = Spool(spool_dir, spool_max_bytes, adopt_siblings=True)
        self._buffer_max_bytes = buffer_max_bytes
        self._unlogged_max_bytes = unlogged_max_bytes
        self._flush_s = flush_ms / 1000
        self._send_batch = send_batch
        self._delivery_timeout_ms = delivery_timeout_ms
        self._pending: deque[_Entry] = deque()  # not yet taken by the sender, in order
        self._unlogged: deque[_Entry] = deque()  # not yet looked at by the log task, in order
        self._memory_bytes = 0
        self._young_bytes = 0
        """The estimated bytes of the events the log task has not looked at yet (``_unlogged``)."""
        self._dropping_young = False
        self._retry: list[_Entry] = []  # taken, not acknowledged: sent again first
        self._inflight: list[_Entry] = []  # being sent
        self._on_disk: tuple[int, int] | None = None  # sequence numbers only the log holds now
        self._delivered_through = -1
        self._next_seq = 0
        self._wakeup = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.buffered = Gauge(
            "warden_bus_buffered_events", "Events waiting in memory for the broker", registry=registry
        )
        self.buffered.set_function(lambda: len(self._pending) + len(self._retry))
        self.spooled_bytes = Gauge(
            "warden_bus_spooled_bytes", "Bytes in the write-ahead log, not yet acknowledged", registry=registry
        )
        self.spooled_bytes.set_function(self.spool.size)
        self.spilled = Counter(
            "warden_bus_spilled_events_total", "Events written to the write-ahead log", registry=registry
        )
        self.dropped = Counter(
            "warden_bus_dropped_events_total",
            "Events dropped: memory and write-ahead log both full, or events not yet logged past their bound",
            registry=registry,
        )
        self.delivered = Counter(
            "warden_bus_delivered_events_total", "Events acknowledged by the broker", ("topic",), registry=registry
        )

    def publish(self, topic: str, key: str, event: BaseModel) -> None:
        size = weight(event)
        # Events younger than the log task's window are held as objects, unmeasured: bounded by an estimate of
        # their bytes (a log stalled on a slow disk must not let them pile up without end).
        if self._young_bytes + size > self._unlogged_max_bytes and self._young_bytes > 0:
            self.dropped.inc()
            if not self._dropping_young:
                self._dropping_young = True
                log.error(
                    "events are dropped: those not yet in the event log reached their bound (is the disk slow?)",
                    extra={"fields": {"unlogged_max_bytes": self._unlogged_max_bytes}},
                )
            return
        self._dropping_young = False
        entry = _Entry(self._next_seq, topic, key, event, None)
        entry.weight = size
        self._young_bytes += size
        self._next_seq += 1
        self._pending.append(entry)
        self._unlogged.append(entry)
        if len(self._pending) == 1 or len(self._pending) >= self._send_batch:
            self._wakeup.set()

    def pending(self) -> int:
        return len(self._pending) + len(self._retry)

    async def start(self) -> None:
        left = await asyncio.to_thread(self.spool.open)
        self._next_seq = self.spool.next_seq
        for entry in self._pending:  # published before the start: numbered after what the log holds
            entry.seq = self._next_seq
            self._next_seq += 1
        if self.spool.adopted:
            log.info(
                "took over the event log of a worker that is gone",
                extra={"fields": {"events": self.spool.adopted, "log": str(self.spool.directory)}},
            )
        if left is not None:
            self._on_disk = left
            log.info("replaying the write-ahead log", extra={"fields": {"events_up_to": left[1] - left[0] + 1}})
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._send_loop()), loop.create_task(self._log_loop())]

    async def stop(self, grace_s: float = 3.0) -> None:
        """Deliver what is waiting for up to ``grace_s``; what is left is on disk when this returns."""
        self._stopping = True
        self._wakeup.set()
        sender = self._tasks[0] if self._tasks else None
        if sender is not None:
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(sender), grace_s)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self._log(force=True)
        waiting = {id(e): e for e in (*self._inflight, *self._retry, *self._pending)}.values()
        lost = sum(1 for entry in waiting if not entry.logged and not entry.acked)
        if lost:
            self.dropped.inc(lost)
            log.error("events lost at stop: the event log is full", extra={"fields": {"dropped": lost}})
        if self._producer is not None:
            # aiokafka's stop() waits for ever on a dead broker; what it still held is in the log already.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._producer.stop(), 2)
            self._producer = None
        self.spool.release(self._delivered_through)
        self.spool.close()

    # -- the write-ahead log ---------------------------------------------------------------------------------------

    async def _log_loop(self) -> None:
        while True:
            await asyncio.sleep(self._flush_s / 2)
            try:
                await self._log(force=False)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("writing the event log failed")

    async def _log(self, force: bool) -> None:
        """Append every unacknowledged event older than half the flush interval (every one, when ``force``)."""
        cutoff = time.monotonic() - self._flush_s / 2
        batch: list[_Entry] = []
        while self._unlogged:
            entry = self._unlogged[0]
            if entry.acked or entry.seq <= self._delivered_through:
                self._young_bytes -= self._unlogged.popleft().weight  # acknowledged already
                continue
            if not force and entry.born > cutoff:
                break
            batch.append(self._unlogged.popleft())
            self._young_bytes -= entry.weight
        if batch:
            records = []
            turn = Turn()
            for e in batch:
                await turn.share()
                records.append((e.seq, e.topic, e.key, e.encoded()))
            kept = await asyncio.to_thread(self.spool.append, records)
            # The broker may have acknowledged them during the fsync, and released the log before they were in it:
            # release again, or with no later delivery the log would hold them (and be replayed) for ever.
            self.spool.release(self._delivered_through)
            self.spilled.inc(kept)
            for entry in batch[:kept]:
                entry.logged = True
            if kept < len(batch):
                log.error("event log is full", extra={"fields": {"not_logged": len(batch) - kept}})
            for entry in batch:
                if not entry.counted and entry.payload is not None and in_pending(entry, self._pending):
                    entry.counted = True
                    self._memory_bytes += len(entry.payload)
        self._bound_memory()

    def _bound_memory(self) -> None:
        """Over the memory limit the oldest waiting events leave memory: logged ones stay on disk, others are lost."""
        while self._memory_bytes > self._buffer_max_bytes and self._pending:
            entry = self._pending[0]
            if not entry.logged and not entry.counted:
                break  # too young to be logged yet: it will be at the next tick
            self._pending.popleft()
            self._forget(entry)
            if entry.logged:
                first = self._on_disk[0] if self._on_disk else entry.seq
                self._on_disk = (first, entry.seq)
            else:
                self.dropped.inc()

    def _forget(self, entry: _Entry) -> None:
        if entry.counted:
            self._memory_bytes -= len(entry.payload or b"")
            entry.counted = False

    # -- sending ---------------------------------------------------------------------------------------------------

    async def _connect(self) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self.client_id,
            enable_idempotence=True,
            acks="all",
            compression_type="zstd",
            linger_ms=5,
            # A batch is compressed in one step of the event loop: a quarter megabyte keeps that step short.
            max_batch_size=256 * 1024,
            max_request_size=MAX_MESSAGE_BYTES,
            request_timeout_ms=self._delivery_timeout_ms,
        )
        return await started(producer)

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
                        "kafka unavailable, keeping events",
                        extra={"fields": {"error": str(exc), "waiting": self.pending()}},
                    )
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
            try:
                batch = self._next_batch()
                if not batch:
                    if self._stopping:
                        return
                    self._wakeup.clear()
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), 0.5)
                    continue
                self._inflight = batch
                self._retry = await self._send(batch)
                self._inflight = []
                if self._retry:
                    await self._reconnect()
                    continue
                self._delivered_through = batch[-1].seq
                if self.spool:
                    self.spool.release(self._delivered_through)
            except Exception:
                log.exception("kafka producer failed; reconnecting")
                await self._reconnect()

    def _next_batch(self) -> list[_Entry]:
        """Oldest first: what failed, then what only the log holds, then what waits in memory."""
        if self._retry:
            return self._retry
        if self._on_disk is not None:
            first, last = self._on_disk
            records = self.spool.read(first, last, self._send_batch, SEND_MAX_BYTES)
            if not records or records[-1][0] >= last:
                self._on_disk = None
            else:
                self._on_disk = (records[-1][0] + 1, last)
            if records:
                batch = [_Entry(seq, topic, key, None, payload) for seq, topic, key, payload in records]
                for entry in batch:
                    entry.logged = True
                return batch
        batch = [self._pending.popleft() for _ in range(min(self._send_batch, len(self._pending)))]
        for entry in batch:
            self._forget(entry)
        return batch

    async def _send(self, batch: list[_Entry]) -> list[_Entry]:
        """Send and wait for the broker's acknowledgements; returns the entries that were not delivered."""
        assert self._producer is not None
        futures: list[asyncio.Future | Exception] = []
        turn = Turn()
        for entry in batch:
            await turn.share()
            try:
                futures.append(await self._producer.send(entry.topic, entry.encoded(), key=entry.key.encode()))
            except Exception as exc:  # the accumulator refused it (closed, timed out, too large)
                futures.append(exc)
        failed: list[_Entry] = []
        delivered: dict[str, int] = {}
        for entry, future in zip(batch, futures, strict=True):
            if isinstance(future, Exception):
                failed.append(entry)
                continue
            await turn.share()
            try:
                await future
            except Exception:
                failed.append(entry)
                continue
            delivered[entry.topic] = delivered.get(entry.topic, 0) + 1
            entry.acked = True  # the log task skips it
            entry.payload = entry.event = None
        for topic, count in delivered.items():  # one labelled increment per topic, not per event
            self.delivered.labels(topic).inc(count)
        return failed

    async def _reconnect(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 2)
        if not self._stopping:
            await asyncio.sleep(0.5)


async def started(producer: AIOKafkaProducer) -> AIOKafkaProducer:
    """``producer`` started; one that cannot start is stopped (bounded: with no broker its stop may hang)."""
    try:
        await producer.start()
    except BaseException:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.stop(), 2)
        raise
    return producer


def in_pending(entry: _Entry, pending: deque[_Entry]) -> bool:
    """Whether ``entry`` still waits in ``pending`` (which is ordered by sequence number)."""
    return bool(pending) and pending[0].seq <= entry.seq
