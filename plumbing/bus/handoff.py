"""The local hand-off between ``warden serve``'s proxy processes and its background process: events on disk.

Each proxy process writes the events it publishes to a log of its own (``<data_dir>/handoff/<worker>/``, the segment
files and frames of the producer's write-ahead log, ``plumbing/bus/spool.py``); the background process reads every
log, hands the events to its own bus (the logger's and the guard's subscriptions), and once they handled them
records how far it got in the log's ``acked`` file. The proxy deletes segments once the background acknowledged
every record in them.

So the proxy never waits for the background: ``publish`` serialises the event into memory and returns; a writer
thread appends what was published to the log every ``flush_ms`` in one write and one fsync (group commit) and frees
the disk the background acknowledged. A slow, stopped or crashed background costs the proxy disk, up to the log's
``max_bytes``, and nothing else. What a crash can lose: a proxy killed with SIGKILL, its last ``flush_ms`` of events
(never fsynced); the background killed, nothing (what it had not acknowledged is read again; the store folds
repeats by interaction and violation id).

Bounds: memory ``buffer_max_bytes`` of serialised events waiting for the writer, disk ``max_bytes`` a log; beyond
either, events are dropped and counted (``warden_handoff_dropped_events_total``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import BaseModel

from plumbing.bus.base import Subscription
from plumbing.bus.spool import Record, Spool, _frames
from plumbing.settings import CommonSettings

log = logging.getLogger(__name__)
ACKED_FILE = "acked"
"""In each log's directory: the highest sequence number the background has handled (written by the background)."""
SEGMENT_BYTES = 4 * 1024 * 1024
"""Smaller than the Kafka log's segments: the proxy frees the disk the background acknowledged segment by segment."""


def read_acked(directory: Path) -> int:
    try:
        return int((directory / ACKED_FILE).read_text().strip() or -1)
    except (FileNotFoundError, ValueError):
        return -1


def write_acked(directory: Path, seq: int) -> None:
    """Atomically and durably: a crash leaves the old number or the new one, never a torn one."""
    tmp = directory / f"{ACKED_FILE}.tmp"
    with open(tmp, "w", encoding="ascii") as handle:
        handle.write(f"{seq}\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, directory / ACKED_FILE)


class HandoffBus:
    """The proxy process's bus: publishing only (its events are consumed in the background process)."""

    def __init__(
        self,
        directory: Path,
        registry: CollectorRegistry,
        *,
        buffer_max_bytes: int,
        max_bytes: int,
        flush_ms: int,
    ) -> None:
        self.directory = directory
        self.spool = Spool(directory, max_bytes, segment_bytes=min(SEGMENT_BYTES, max(max_bytes // 4, 1)))
        self._buffer_max_bytes = buffer_max_bytes
        self._flush_s = flush_ms / 1000
        self._queue: deque[tuple[str, str, bytes]] = deque()
        self._bytes = 0
        self._bytes_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = Counter(
            "warden_handoff_written_events_total", "Events written to the hand-off log", registry=registry
        )
        self.dropped = Counter(
            "warden_handoff_dropped_events_total",
            "Events dropped: the hand-off's memory or log was full",
            registry=registry,
        )
        Gauge(
            "warden_handoff_log_bytes", "Bytes in the hand-off log not yet acknowledged", registry=registry
        ).set_function(self.spool.size)

    @classmethod
    def from_settings(cls, directory: Path, registry: CollectorRegistry, settings: CommonSettings) -> HandoffBus:
        """Bounded and flushed as ``WARDEN_BUS_BUFFER_MAX_BYTES``, ``WARDEN_BUS_SPOOL_MAX_BYTES`` and
        ``WARDEN_BUS_SPOOL_FLUSH_MS`` say."""
        return cls(
            directory,
            registry,
            buffer_max_bytes=settings.bus_buffer_max_bytes,
            max_bytes=settings.bus_spool_max_bytes,
            flush_ms=settings.bus_spool_flush_ms,
        )

    def publish(self, topic: str, key: str, event: BaseModel) -> None:
        payload = event.__pydantic_serializer__.to_json(event)  # model_dump_json()'s bytes, without the round trip
        with self._bytes_lock:
            if self._bytes + len(payload) > self._buffer_max_bytes:
                self.dropped.inc()
                return
            self._bytes += len(payload)
        self._queue.append((topic, key, payload))

    def subscribe(self, subscription: Subscription[object]) -> None:
        raise TypeError("the proxy's hand-off bus only publishes; subscriptions run in the background process")

    async def start(self) -> None:
        await asyncio.to_thread(self._open)
        self._thread = threading.Thread(target=self._write_forever, name="handoff-writer", daemon=True)
        self._thread.start()

    def _open(self) -> None:
        self.spool.open()
        # After every segment was acknowledged and deleted, numbering goes on after what the background has seen.
        self.spool.next_seq = max(self.spool.next_seq, read_acked(self.directory) + 1)

    async def stop(self) -> None:
        """Everything published before the call is on disk when this returns."""
        if self._thread is None:
            return
        self._stop.set()
        await asyncio.to_thread(self._thread.join)
        self._thread = None
        self.spool.close()

    def pending(self) -> int:
        return len(self._queue)

    # -- the writer thread --------------------------------------------------------------------------------------

    def _write_forever(self) -> None:
        while not self._stop.wait(self._flush_s):
            self._write_once()
        self._write_once()

    def _write_once(self) -> None:
        try:
            self.spool.release(read_acked(self.directory))
            taken: list[tuple[str, str, bytes]] = []
            while self._queue:
                taken.append(self._queue.popleft())
            if not taken:
                return
            first = self.spool.next_seq
            records: list[Record] = [(first + n, t, k, p) for n, (t, k, p) in enumerate(taken)]
            kept = self.spool.append(records)
            with self._bytes_lock:
                self._bytes -= sum(len(p) for _, _, p in taken)
            self.written.inc(kept)
            if kept < len(records):
                self.dropped.inc(len(records) - kept)
                log.warning("hand-off log full: events dropped", extra={"fields": {"dropped": len(records) - kept}})
        except Exception:  # never let the writer die: the next round tries again
            log.exception("hand-off log write failed")


@dataclass
class _Position:
    segment: int = -1  # the first sequence number of the segment being read (its name)
    offset: int = 0


@dataclass
class _Log:
    directory: Path
    acked: int
    position: _Position = field(default_factory=_Position)
    read_through: int = -1
    held_back: bool = False
    """The last read stopped before a record that did not fit its budget."""


@dataclass
class _Round:
    settled: Callable[[], bool]
    acks: list[tuple[_Log, int]]


@dataclass
class HandoffReader:
    """The background process's side: every proxy's log → ``publish`` (its bus), acknowledged once settled.

    A round reads what the logs hold beyond what was read already (up to ``batch_max_bytes``, and no more than the
    bus has ``room`` for: the rest waits in the logs, on disk) and publishes it; ``mark`` then says when the bus has
    handled all of it (the subscriptions returned: their effect is durable), and rounds are acknowledged in order
    once they are (each log's ``acked``). A crash of this process between the two means those rounds are read again.

    With ``room`` (the in-process bus), the reader goes on reading while earlier rounds are handled: a consumer that
    waits for its batch to fill (``WARDEN_LOGGER_MAX_BATCH``, ``WARDEN_LOGGER_MAX_WAIT_S``) gets the next events
    instead of waiting for ones that would only be read after its batch. Without (a broker-backed bus, which settles
    on its own), each round waits until it settled. A record larger than the budget is read only when every earlier
    round has settled (else it would never be)."""

    root: Path
    publish: Callable[[str, str, bytes], None]
    mark: Callable[[], Callable[[], bool]]
    room: Callable[[], int] | None = None
    """Bytes the bus can still take (``InProcessBus.room``); None: only ``batch_max_bytes`` bounds a round."""
    press: Callable[[], None] | None = None
    """Called when records wait in the logs for room on the bus (``InProcessBus.press``): its consumers then hand
    over what they hold now instead of waiting for batches that cannot fill."""
    batch_max_bytes: int = 16 * 1024 * 1024
    poll_s: float = 0.05
    _logs: dict[Path, _Log] = field(default_factory=dict)
    _unacknowledged: deque[_Round] = field(default_factory=deque)
    _task: asyncio.Task[None] | None = None
    _stopping: bool = False
    delivered: int = 0

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Read every log to its end (the proxies have stopped and flushed) and publish it, then stop reading; what
        has settled by then is acknowledged (``finish`` acknowledges the rest once the bus drained)."""
        self._stopping = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def finish(self) -> None:
        """Acknowledge every round that settled: after the bus stopped, all of them."""
        await self.acknowledge_settled()

    async def _run(self) -> None:
        while True:
            try:
                got = await self.round()
                if self.room is None:
                    await self.settle()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("hand-off round failed; retrying")
                got = 0
                await asyncio.sleep(1)
            if not got:
                if self._stopping:
                    return
                await asyncio.sleep(self.poll_s)

    async def round(self) -> int:
        """Read and publish what the logs hold next, and acknowledge the rounds that settled; returns how many
        events it published."""
        await self.acknowledge_settled()
        batch, waiting = await asyncio.to_thread(self._read, not self._unacknowledged)
        for _, records in batch:
            for _, topic, key, payload in records:
                self.publish(topic, key, payload)
        if waiting and self.press is not None:
            self.press()
        if not batch:
            return 0
        self._unacknowledged.append(_Round(self.mark(), [(entry, records[-1][0]) for entry, records in batch]))
        count = sum(len(records) for _, records in batch)
        self.delivered += count
        return count

    async def settle(self) -> None:
        """Wait until every published round settled, and acknowledge them."""
        while not all(published.settled() for published in self._unacknowledged):
            await asyncio.sleep(0.01)
        await self.acknowledge_settled()

    async def acknowledge_settled(self) -> None:
        """Write each log's ``acked`` up to the last of the leading rounds that settled (in order: an earlier round
        still being handled holds back the later ones)."""
        acks: dict[Path, tuple[_Log, int]] = {}
        while self._unacknowledged and self._unacknowledged[0].settled():
            for entry, seq in self._unacknowledged.popleft().acks:
                acks[entry.directory] = (entry, seq)
        if acks:
            await asyncio.to_thread(self._acknowledge, list(acks.values()))

    def _acknowledge(self, acks: list[tuple[_Log, int]]) -> None:
        for entry, seq in acks:
            write_acked(entry.directory, seq)
            entry.acked = seq

    def _read(self, settled: bool) -> tuple[list[tuple[_Log, list[Record]]], bool]:
        """What the logs hold next, within the budget; and whether records wait for room on the bus."""
        out: list[tuple[_Log, list[Record]]] = []
        waiting = False
        room = self.batch_max_bytes if self.room is None else self.room()
        budget = min(self.batch_max_bytes, room)
        for directory in sorted(p for p in self.root.glob("*") if p.is_dir()):
            entry = self._logs.get(directory)
            if entry is None:
                entry = self._logs[directory] = _Log(directory, read_acked(directory))
            records = _read_log(entry, budget, first_of_round=settled and not out)
            waiting = waiting or (entry.held_back and room < self.batch_max_bytes)
            if records:
                out.append((entry, records))
                budget -= sum(record_bytes(r[3]) for r in records)
                if budget <= 0:
                    break
        return out, waiting


def _segments(directory: Path) -> list[tuple[int, Path]]:
    return sorted((int(p.stem.split("-")[1]), p) for p in directory.glob("wal-*.log"))


def record_bytes(payload: bytes) -> int:
    """What a record read costs the bus it is published to: the bytes object, as ``InProcessBus`` counts it."""
    return sys.getsizeof(payload)


def _read_log(entry: _Log, budget: int, first_of_round: bool) -> list[Record]:
    """Records after ``entry.acked`` (and after what this round already read), from where the last read stopped,
    up to ``budget`` bytes (the first record of a round whatever its size)."""
    out: list[Record] = []
    taken = 0
    entry.held_back = False
    segments = _segments(entry.directory)
    for index, (first, path) in enumerate(segments):
        if first < entry.position.segment:
            continue
        newest = index == len(segments) - 1
        offset = entry.position.offset if first == entry.position.segment else 0
        end = offset
        for seq, topic, key, payload, after in _frames(path, offset):
            if seq <= max(entry.acked, entry.read_through):
                end = after
                continue
            size = record_bytes(payload)
            if taken + size > budget and (out or not first_of_round):
                # Stop before it: the next round starts at this record.
                entry.position = _Position(first, end)
                entry.held_back = True
                if out:
                    entry.read_through = out[-1][0]
                return out
            end = after
            out.append((seq, topic, key, payload))
            taken += size
        # A segment that is not the newest is complete: what its frames stopped at was torn by a crash (its writer
        # started a new segment on restart). The newest one may still be being written: stop and look again.
        entry.position = _Position(first, end) if newest else _Position(first + 1, 0)
        if newest:
            break
    if out:
        entry.read_through = out[-1][0]
    return out
