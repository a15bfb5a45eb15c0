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
    return HandoffReader(root, bus.publish_raw, lambda: bus.pending() == 0, poll_s=0.01)


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
    while await reader(tmp_path, background).round():
        pass
    assert sorted(seen) == list(range(300))
    assert [read_acked(tmp_path / f"worker-{i}") for i in range(2)] == [149, 149]
    # A worker started again frees what was acknowledged and numbers on after it.
    again = worker_bus(tmp_path / "worker-0")
    await again.start()
    again.publish(TOPIC, "300", Event(n=300))
    await again.stop()
    assert again.spool.size() < 2000  # the 150 acknowledged records are gone, the new one stays
    seen.clear()
    await reader(tmp_path, background).round()
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
    stuck = asyncio.get_running_loop().create_task(reader(tmp_path, background).round())
    await asyncio.sleep(0.3)
    assert not stuck.done() and seen == [] and read_acked(tmp_path / "worker-0") == -1  # nothing acknowledged
    stuck.cancel()  # the background process dies here
    fail[0] = False
    await background.stop()  # the store took the events, but the process died before acknowledging them
    assert sorted(seen) == list(range(50))
    seen.clear()
    fresh = consumer(seen)
    await fresh.start()
    assert await reader(tmp_path, fresh).round() == 50  # not acknowledged: read again, whole
    assert sorted(seen) == list(range(50)) and read_acked(tmp_path / "worker-0") == 49
    assert await reader(tmp_path, fresh).round() == 0
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
    while await reader(tmp_path, background).round():
        pass
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
    while await reader(tmp_path, background).round():
        pass
    assert seen == [0, 1]
    await background.stop()
