"""The hand-off between ``warden serve``'s proxy workers and its background process: each event reaches the
subscriptions, is acknowledged only once they returned, is read again after a crash before that, and costs the proxy
no more than its bounds when the background is away."""

from __future__ import annotations

import asyncio

import orjson
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from plumbing.bus.base import Delivery, Subscription
from plumbing.bus.handoff import HandoffBus, HandoffReader, read_acked
from plumbing.bus.inprocess import InProcessBus

TOPIC = "test.events"


class Event(BaseModel):
    n: int
    body: str = ""


def worker_bus(directory, **limits) -> HandoffBus:
    bounds = {"buffer_max_bytes": 1 << 20, "max_bytes": 1 << 22, "flush_ms": 10, **limits}
    return HandoffBus(directory, CollectorRegistry(), **bounds)


def consumer(seen: list[int], fail: list[bool] | None = None) -> InProcessBus:
    async def handle(events: list[int]) -> None:
        if fail and fail[0]:
            raise RuntimeError("store down")
        seen.extend(events)

    def decode(delivery: Delivery) -> int:
        return orjson.loads(delivery.raw or b"")["n"]

    bus = InProcessBus()
    bus.subscribe(Subscription((TOPIC,), decode, handle, group="test", max_wait_s=0.01))
    return bus


def reader(root, bus: InProcessBus) -> HandoffReader:
    return HandoffReader(root, bus.publish_raw, bus.mark, bus.room, poll_s=0.01)


async def read_all(reader: HandoffReader) -> int:
    """Every log to its end, acknowledged once handled."""
    count = 0
    while got := await reader.round():
        count += got
    await reader.settle()
    return count


async def test_events_of_every_worker_reach_the_subscription_once_and_acknowledged_segments_go(tmp_path):
    workers = [worker_bus(tmp_path / f"worker-{i}") for i in range(2)]
    for bus in workers:
        await bus.start()
    for n in range(300):
        workers[n % 2].publish(TOPIC, str(n), Event(n=n, body="x" * 2000))
    for bus in workers:
        await bus.stop()  # on disk now
    seen: list[int] = []
    background = consumer(seen)
    await background.start()
    await read_all(reader(tmp_path, background))
    assert sorted(seen) == list(range(300))
    assert [read_acked(tmp_path / f"worker-{i}") for i in range(2)] == [149, 149]
    # A worker started again frees what was acknowledged and numbers on after it.
    again = worker_bus(tmp_path / "worker-0")
    await again.start()
    again.publish(TOPIC, "300", Event(n=300))
    await again.stop()
    assert again.spool.size() < 2000  # the 150 acknowledged records are gone, the new one stays
    seen.clear()
    await read_all(reader(tmp_path, background))
    assert seen == [300]
    await background.stop()


async def test_a_crash_before_the_acknowledgement_reads_the_events_again_and_a_failing_store_holds_them(tmp_path):
    worker = worker_bus(tmp_path / "worker-0")
    await worker.start()
    for n in range(50):
        worker.publish(TOPIC, str(n), Event(n=n))
    await worker.stop()
    seen: list[int] = []
    fail = [True]
    background = consumer(seen, fail)
    await background.start()
    dying = reader(tmp_path, background)
    assert await dying.round() == 50
    stuck = asyncio.get_running_loop().create_task(dying.settle())
    await asyncio.sleep(0.3)
    assert not stuck.done() and seen == [] and read_acked(tmp_path / "worker-0") == -1  # nothing acknowledged
    stuck.cancel()  # the background process dies here
    fail[0] = False
    await background.stop()  # the store took the events, but the process died before acknowledging them
    assert sorted(seen) == list(range(50))
    seen.clear()
    fresh = consumer(seen)
    await fresh.start()
    assert await read_all(reader(tmp_path, fresh)) == 50  # not acknowledged: read again, whole
    assert sorted(seen) == list(range(50)) and read_acked(tmp_path / "worker-0") == 49
    assert await read_all(reader(tmp_path, fresh)) == 0
    await fresh.stop()


async def test_without_a_background_the_worker_keeps_its_bounds_and_counts_what_it_drops(tmp_path):
    worker = worker_bus(tmp_path / "worker-0", max_bytes=64 * 1024)
    await worker.start()
    for n in range(200):
        worker.publish(TOPIC, str(n), Event(n=n, body="y" * 1000))
    await worker.stop()
    assert worker.spool.size() <= 64 * 1024
    written, dropped = worker.written._value.get(), worker.dropped._value.get()
    assert written + dropped == 200 and dropped > 0
    seen: list[int] = []
    background = consumer(seen)
    await background.start()
    await read_all(reader(tmp_path, background))
    assert seen == list(range(int(written)))  # the oldest were kept, in order
    await background.stop()


async def test_memory_waiting_for_the_writer_is_bounded_in_bytes(tmp_path):
    worker = worker_bus(tmp_path / "worker-0", buffer_max_bytes=10_000)
    for n in range(20):  # not started: nothing writes
        worker.publish(TOPIC, str(n), Event(n=n, body="z" * 1000))
    assert worker.pending() < 10 and worker.dropped._value.get() == 20 - worker.pending()


async def test_a_record_torn_by_a_worker_crash_is_skipped_and_the_next_segment_read(tmp_path):
    worker = worker_bus(tmp_path / "worker-0")
    await worker.start()
    worker.publish(TOPIC, "0", Event(n=0))
    await worker.stop()
    (segment,) = (tmp_path / "worker-0").glob("wal-*.log")
    with open(segment, "ab") as handle:
        handle.write(b"\x01\x02\x03")  # the worker was killed mid-write
    again = worker_bus(tmp_path / "worker-0")
    await again.start()
    again.publish(TOPIC, "1", Event(n=1))
    await again.stop()
    seen: list[int] = []
    background = consumer(seen)
    await background.start()
    await read_all(reader(tmp_path, background))
    assert seen == [0, 1]
    await background.stop()


async def test_a_consumer_waiting_for_its_batch_to_fill_gets_the_events_written_after_its_first(tmp_path):
    """The logger writes a batch when it is full (``WARDEN_LOGGER_MAX_BATCH``) or ``WARDEN_LOGGER_MAX_WAIT_S`` old:
    the reader must go on reading while it waits, or an interaction whose request and response reached the log in
    two writes would wait the whole ``max_wait_s``."""
    seen: list[int] = []

    async def handle(events: list[int]) -> None:
        seen.extend(events)

    background = InProcessBus()
    decode = lambda delivery: orjson.loads(delivery.raw or b"")["n"]  # noqa: E731
    background.subscribe(Subscription((TOPIC,), decode, handle, group="store", max_batch=2, max_wait_s=3600))
    await background.start()
    handoff = reader(tmp_path, background)
    await handoff.start()
    worker = worker_bus(tmp_path / "worker-0")
    await worker.start()
    for n in range(4):  # one event per write of the log
        worker.publish(TOPIC, str(n), Event(n=n))
        await asyncio.sleep(0.1)
    for _ in range(200):
        if len(seen) == 4 and read_acked(tmp_path / "worker-0") == 3:
            break
        await asyncio.sleep(0.02)
    assert seen == [0, 1, 2, 3] and read_acked(tmp_path / "worker-0") == 3
    await worker.stop()
    await handoff.stop()
    await background.stop()
    await handoff.finish()


async def test_an_event_is_acknowledged_only_once_what_its_handlers_published_was_handled_too(tmp_path):
    """The guard publishes a violation while it handles a request event: the hand-off log must not forget the
    request before the violation is stored, or a crash in between loses the violation for good."""
    derived = "test.derived"
    stored: list[int] = []
    store_up = [False]
    background = InProcessBus()

    async def score(events: list[int]) -> None:
        for n in events:
            background.publish(derived, str(n), Event(n=n))

    async def store(events: list[Event]) -> None:
        if not store_up[0]:
            raise RuntimeError("store down")
        stored.extend(e.n for e in events)

    decode = lambda delivery: orjson.loads(delivery.raw or b"")["n"]  # noqa: E731
    background.subscribe(Subscription((TOPIC,), decode, score, group="guard", max_wait_s=0.01))
    background.subscribe(Subscription((derived,), lambda d: d.event, store, group="logger", max_wait_s=0.01))
    worker = worker_bus(tmp_path / "worker-0")
    await worker.start()
    for n in range(3):
        worker.publish(TOPIC, str(n), Event(n=n))
    await worker.stop()
    await background.start()
    handoff = reader(tmp_path, background)
    await handoff.start()
    await asyncio.sleep(0.5)  # the guard handled the events long ago; their violations wait for the store
    assert background.pending() == 3 and read_acked(tmp_path / "worker-0") == -1
    store_up[0] = True
    for _ in range(400):
        if read_acked(tmp_path / "worker-0") == 2:
            break
        await asyncio.sleep(0.02)
    assert sorted(stored) == [0, 1, 2] and read_acked(tmp_path / "worker-0") == 2
    await handoff.stop()
    await background.stop()


async def test_events_waiting_for_room_on_the_bus_make_its_consumers_hand_over_what_they_hold(tmp_path):
    """A backlog of events each larger than half the bus: a consumer waiting for its batch to fill would wait its
    whole ``max_wait_s`` for every one of them (the next cannot be read before room is made); the reader says it is
    waiting, and the consumers hand over what they hold at once."""
    seen: list[int] = []

    async def handle(events: list[int]) -> None:
        seen.extend(events)

    background = InProcessBus(max_bytes=30_000)
    decode = lambda delivery: orjson.loads(delivery.raw or b"")["n"]  # noqa: E731
    background.subscribe(Subscription((TOPIC,), decode, handle, group="store", max_wait_s=3600))
    worker = worker_bus(tmp_path / "worker-0")
    await worker.start()
    for n in range(10):
        worker.publish(TOPIC, str(n), Event(n=n, body="x" * 20_000))
    await worker.stop()
    await background.start()
    handoff = HandoffReader(tmp_path, background.publish_raw, background.mark, background.room, background.press)
    await handoff.start()
    for _ in range(250):
        if read_acked(tmp_path / "worker-0") == 8:
            break
        await asyncio.sleep(0.02)
    # The last one waits for its batch as live traffic does: nothing is waiting behind it.
    assert seen == list(range(9)) and read_acked(tmp_path / "worker-0") == 8
    await handoff.stop()
    await background.stop()
    await handoff.finish()
    assert seen == list(range(10)) and read_acked(tmp_path / "worker-0") == 9
