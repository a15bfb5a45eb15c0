"""The producer's write-ahead log: what the broker has not acknowledged is on disk, within its byte cap, and reaches
the broker after a restart."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid

from aiokafka import AIOKafkaConsumer
from prometheus_client import CollectorRegistry

from plumbing.bus import dispatch, publisher
from plumbing.bus.kafka import KafkaBus
from plumbing.bus.spool import Spool, _frames, worker_directory
from plumbing.bus.topics_admin import create_topics
from schemas import topics
from tests.distributed.events import interaction

UNREACHABLE = "127.0.0.1:9"


async def until(predicate, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def on_disk(directory) -> list[tuple[int, str, str, bytes]]:
    spool = Spool(directory, 2**40)
    left = spool.open()
    try:
        return spool.read(left[0], left[1], 10**9, 2**40) if left else []
    finally:
        spool.close()


def disk_bytes(directory) -> int:
    return sum(p.stat().st_size for p in directory.glob("wal-*.log"))


async def test_publishing_never_waits_on_an_unreachable_broker_and_everything_is_logged_within_the_memory_bound(
    tmp_path,
):
    bus = KafkaBus(
        UNREACHABLE,
        client_id="nowhere",
        spool_dir=tmp_path / "spool",
        registry=CollectorRegistry(),
        buffer_max_bytes=20_000,
    )
    await bus.start()
    sent = [interaction("offline", n)[0] for n in range(1000)]
    for event in sent:
        bus.publish(topics.REQUESTS, event.interaction_id, event)
    await until(lambda: bus.spilled._value.get() == 1000)
    await until(lambda: bus.publisher._memory_bytes <= 20_000)
    assert bus.pending() < 1000  # the rest left memory: it is read back from the log
    await bus.stop(timeout=1)
    assert bus.dropped._value.get() == 0
    assert [key for _, _, key, _ in on_disk(tmp_path / "spool")] == [e.interaction_id for e in sent]


async def test_the_log_never_grows_past_its_byte_cap_and_what_does_not_fit_is_counted(tmp_path):
    cap = 50_000
    bus = KafkaBus(
        UNREACHABLE,
        client_id="nowhere",
        spool_dir=tmp_path / "spool",
        registry=CollectorRegistry(),
        buffer_max_bytes=10_000,
        spool_max_bytes=cap,
    )
    await bus.start()
    for n in range(1000):  # about 500 kB of events: ten times the cap
        event = interaction("offline", n)[0]
        bus.publish(topics.REQUESTS, event.interaction_id, event)
    await bus.stop(timeout=1)
    logged = on_disk(tmp_path / "spool")
    assert disk_bytes(tmp_path / "spool") <= cap
    assert len(logged) == bus.spilled._value.get() < 1000
    assert bus.spilled._value.get() + bus.dropped._value.get() == 1000  # every event delivered, logged or counted


async def test_a_restart_delivers_what_the_log_holds_once_the_broker_is_there(kafka_bootstrap, tmp_path):
    await create_topics(kafka_bootstrap, partitions=3)
    agent = f"agent-{uuid.uuid4().hex[:8]}"
    offline = KafkaBus(UNREACHABLE, client_id="p", spool_dir=tmp_path / "spool", registry=CollectorRegistry())
    await offline.start()
    sent = [interaction(agent, n)[0] for n in range(300)]
    for event in sent:
        offline.publish(topics.REQUESTS, event.interaction_id, event)
    await offline.stop(timeout=1)  # nothing reached a broker: all of it is in the log

    online = KafkaBus(kafka_bootstrap, client_id="p", spool_dir=tmp_path / "spool", registry=CollectorRegistry())
    await online.start()
    await until(lambda: online.delivered.labels(topics.REQUESTS)._value.get() >= 300)
    await online.stop()
    assert disk_bytes(tmp_path / "spool") == 0

    keys: list[str] = []
    consumer = AIOKafkaConsumer(
        topics.REQUESTS, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", group_id=uuid.uuid4().hex
    )
    await consumer.start()
    try:
        end = asyncio.get_running_loop().time() + 60
        while len(keys) < 300 and asyncio.get_running_loop().time() < end:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                keys += [r.key.decode() for r in records if agent.encode() in r.value]
    finally:
        await consumer.stop()
    assert sorted(keys) == sorted(e.interaction_id for e in sent)  # each once


async def test_one_log_directory_serves_one_process(tmp_path):
    first = KafkaBus(UNREACHABLE, client_id="a", spool_dir=tmp_path / "spool", registry=CollectorRegistry())
    await first.start()
    second = KafkaBus(UNREACHABLE, client_id="b", spool_dir=tmp_path / "spool", registry=CollectorRegistry())
    try:
        try:
            await second.start()
        except RuntimeError as exc:
            assert "another process" in str(exc)
        else:
            raise AssertionError("a second bus started on the same log")
    finally:
        await first.stop(timeout=1)


def records(prefix: str, count: int, first: int = 0) -> list[tuple[int, str, str, bytes]]:
    return [(first + n, topics.REQUESTS, f"{prefix}-{n}", f"{prefix} payload {n}".encode()) for n in range(count)]


def left_in(directory) -> list[str]:
    """The keys logged in ``directory`` (read without opening it as a spool: that would take over its siblings)."""
    return [key for path in sorted(directory.glob("wal-*.log")) for _, _, key, _, _ in _frames(path)]


def test_a_worker_takes_over_the_event_logs_nobody_holds_and_leaves_a_held_one_to_its_owner(tmp_path):
    root = tmp_path / "spool" / "ingress"
    held = Spool(worker_directory(root, 1), 2**40, adopt_siblings=True)
    held.open()
    held.append(records("held", 3))
    # What a single process and a worker of a larger N left (written elsewhere, then moved in: opening them in place
    # would already take the others over).
    for directory, prefix in ((root, "single"), (worker_directory(root, 2), "gone")):
        orphan = Spool(tmp_path / prefix, 2**40)
        orphan.open()
        orphan.append(records(prefix, 5))
        orphan.close()
        directory.mkdir(parents=True, exist_ok=True)
        for path in (tmp_path / prefix).glob("wal-*.log"):
            path.rename(directory / path.name)
    try:
        plain = Spool(worker_directory(root, 3), 2**40)  # a log that is not a producer's takes nothing over
        plain.open()
        plain.close()
        assert plain.adopted == 0 and len(left_in(worker_directory(root, 2))) == 5
        spool = Spool(worker_directory(root, 0), 2**40, adopt_siblings=True)
        left = spool.open()
        try:
            assert left is not None and spool.adopted == 10
            taken = spool.read(left[0], left[1], 10**9, 2**40)
        finally:
            spool.close()
        assert sorted(key for _, _, key, _ in taken) == sorted(
            [f"single-{n}" for n in range(5)] + [f"gone-{n}" for n in range(5)]
        )
        assert [payload for _, _, key, payload in taken if key == "gone-3"] == [b"gone payload 3"]
        assert [seq for seq, *_ in taken] == list(range(10))  # renumbered in this log's order
        assert left_in(root) == [] and left_in(worker_directory(root, 2)) == []
        assert left_in(worker_directory(root, 1)) == ["held-0", "held-1", "held-2"]
    finally:
        held.close()
    # Once its owner is gone, the next worker to start takes it over too.
    again = Spool(worker_directory(root, 0), 2**40, adopt_siblings=True)
    again.open()
    again.close()
    assert again.adopted == 3 and left_in(worker_directory(root, 1)) == []


async def test_logging_a_large_batch_lets_the_event_loop_serve_other_work_meanwhile(tmp_path, monkeypatch):
    """The producer's loops over a batch hand the event loop back between events once their time slice is spent
    (here a slice of zero: after every event), so a request never waits for a whole batch to be encoded."""
    monkeypatch.setattr(dispatch, "TURN_S", 0.0)
    ticks = 0
    seen_at: list[int] = []  # the other work's progress each time an event is encoded
    encoded = publisher._Entry.encoded

    def encoding(entry):
        seen_at.append(ticks)
        return encoded(entry)

    monkeypatch.setattr(publisher._Entry, "encoded", encoding)
    bus = KafkaBus(UNREACHABLE, client_id="nowhere", spool_dir=tmp_path / "spool", registry=CollectorRegistry())
    await bus.start()
    sent = [interaction("sliced", n)[0] for n in range(200)]
    for event in sent:
        bus.publish(topics.REQUESTS, event.interaction_id, event)

    async def other_work() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticker = asyncio.get_running_loop().create_task(other_work())
    await asyncio.sleep(0)
    seen_at.clear()
    await bus.publisher._log(force=True)  # one batch of 200 events, encoded in one call
    batch = list(seen_at)
    ticker.cancel()
    await bus.stop(timeout=1)
    assert len(batch) == 200
    assert all(later > earlier for earlier, later in itertools.pairwise(batch))  # it ran between them
    assert [key for _, _, key, _ in on_disk(tmp_path / "spool")] == [e.interaction_id for e in sent]


async def test_events_the_broker_acknowledges_while_they_are_being_logged_leave_no_log_behind(
    kafka_bootstrap, tmp_path, monkeypatch
):
    """The log task takes events the broker has not acknowledged yet; while their fsync runs the broker does. The log
    they land in must still be released: with no traffic after them, it would otherwise be held (and replayed) for
    ever, and the ingress would report undelivered bytes that are delivered."""
    await create_topics(kafka_bootstrap, partitions=3)
    append = Spool.append
    appended = asyncio.Event()
    loop = asyncio.get_running_loop()

    def slow_append(spool, records, sync=True):
        time.sleep(1.0)  # a slow disk: the broker acknowledges everything meanwhile
        kept = append(spool, records, sync)
        loop.call_soon_threadsafe(appended.set)
        return kept

    monkeypatch.setattr(Spool, "append", slow_append)
    bus = KafkaBus(
        kafka_bootstrap, client_id="p", spool_dir=tmp_path / "spool", registry=CollectorRegistry(), spool_flush_ms=2
    )
    await bus.start()
    await until(lambda: bus.publisher._producer is not None)
    for event in [interaction(f"acked-{uuid.uuid4().hex[:8]}", n)[0] for n in range(50)]:
        bus.publish(topics.REQUESTS, event.interaction_id, event)
    await until(lambda: bus.delivered.labels(topics.REQUESTS)._value.get() >= 50)
    await asyncio.wait_for(appended.wait(), 30)
    assert bus.spilled._value.get() > 0, "the log task never took an unacknowledged event: the race was not staged"
    await until(lambda: bus.publisher.spool.size() == 0, timeout=5)
    assert disk_bytes(tmp_path / "spool") == 0
    await bus.stop()
