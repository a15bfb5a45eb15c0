"""The in-process bus holds at most its bound in bytes, whatever the number of events: a request path publishing to
a full bus drops (counted, logged) without blocking and loses nothing it took; what a handler derives is taken; a
batch never holds more bytes than the bus; and ``warden serve``'s background reads its hand-off logs no faster than
the bus has room, so a flood of large events waits on disk and every one of them arrives."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import orjson
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from plumbing.bus.base import Delivery, Subscription
from plumbing.bus.handoff import HandoffBus, HandoffReader, read_acked
from plumbing.bus.inprocess import InProcessBus, event_bytes
from plumbing.settings import CommonSettings

TOPIC = "test.events"
DERIVED = "test.derived"
BODY = 100_000
CAP = 1_000_000


class Event(BaseModel):
    n: int
    body: str = ""


def dropped(registry: CollectorRegistry) -> float:
    return registry.get_sample_value("warden_bus_dropped_events_total") or 0.0


def test_the_bound_is_a_setting_in_bytes_documented_in_the_readme():
    assert CommonSettings(bus_memory_max_bytes=12345).bus_memory_max_bytes == 12345
    assert InProcessBus(12345).max_bytes == 12345
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    (row,) = [line for line in readme.splitlines() if line.startswith("| `WARDEN_BUS_MEMORY_MAX_BYTES` | 64 MiB |")]
    assert CommonSettings().bus_memory_max_bytes == 64 * 1024**2
    assert "warden_bus_dropped_events_total" in row and "back-pressure" in row


def test_an_event_is_weighed_by_its_bytes_not_counted():
    assert event_bytes(Event(n=1, body="x" * BODY)) >= BODY
    assert event_bytes(Event(n=1, body="x" * BODY)) > 50 * event_bytes(Event(n=1))


async def test_a_request_path_flooding_a_stuck_bus_is_bounded_in_bytes_and_loses_nothing_it_took(caplog):
    registry = CollectorRegistry()
    bus = InProcessBus(CAP, registry)
    release = asyncio.Event()
    seen: list[int] = []

    async def handle(events: list[Event]) -> None:
        await release.wait()  # the store is stuck
        seen.extend(e.n for e in events)

    bus.subscribe(Subscription((TOPIC,), Event, handle, group="store", max_batch=5000, max_wait_s=0.01))
    await bus.start()
    published = 100  # 10 MB of bodies against a 1 MB bound
    with caplog.at_level(logging.ERROR, logger="plumbing.bus.inprocess"):
        for n in range(published):
            bus.publish(TOPIC, str(n), Event(n=n, body="x" * BODY))  # returns at once: nothing awaited
            assert bus.held_bytes() <= CAP
            await asyncio.sleep(0)  # the consumer takes its batch meanwhile
    taken = bus.pending()
    assert 0 < taken < published
    assert bus.held_bytes() >= taken * BODY  # the bodies are accounted, byte for byte
    assert dropped(registry) == published - taken
    assert any("in-process bus full" in r.getMessage() for r in caplog.records)
    release.set()
    await bus.stop()
    assert sorted(seen) == sorted(set(seen)) and len(seen) == taken  # everything taken was handled, once
    assert seen == list(range(taken))  # the oldest were taken, the newest dropped
    assert bus.held_bytes() == 0


async def test_what_a_handler_derives_is_taken_even_when_the_bus_is_full():
    registry = CollectorRegistry()
    bus = InProcessBus(CAP, registry)
    derived: list[int] = []
    release = asyncio.Event()

    findings: list[int] = []

    async def judge(events: list[Event]) -> None:
        for event in events:  # a finding per event, as the guard's violations
            bus.publish(DERIVED, str(event.n), Event(n=event.n, body="v" * BODY))
            findings.append(event.n)

    async def store(events: list[Event]) -> None:
        await release.wait()
        derived.extend(e.n for e in events if e.body.startswith("v"))

    bus.subscribe(Subscription((TOPIC,), Event, judge, group="guard", max_wait_s=0.01))
    bus.subscribe(Subscription((TOPIC, DERIVED), Event, store, group="store", max_wait_s=0.01))
    await bus.start()
    for n in range(9):  # 0.9 MB: the store holds it all, then the guard's findings come on top
        bus.publish(TOPIC, str(n), Event(n=n, body="x" * BODY))
    while len(findings) < 9 or bus.pending() != 18:  # the guard is done: the store holds the events and findings
        await asyncio.sleep(0.01)
    assert bus.held_bytes() > CAP and dropped(registry) == 0
    bus.publish(TOPIC, "late", Event(n=99, body="x" * BODY))  # from outside a handler: no room
    assert dropped(registry) == 1
    release.set()
    await bus.stop()
    assert sorted(derived) == list(range(9))


async def test_a_batch_never_holds_more_bytes_than_the_bus_whatever_max_batch_says():
    bus = InProcessBus(350_000)
    batches: list[int] = []

    async def handle(events: list[Event]) -> None:
        batches.append(sum(len(e.body) for e in events))

    def decode(delivery: Delivery) -> Event:
        return Event.model_validate_json(delivery.raw or b"")

    bus.subscribe(Subscription((TOPIC,), decode, handle, group="store", max_batch=50_000, max_wait_s=0.05))
    for n in range(9):  # 900 KB queued at once, as a reader hands them over (the bus takes what it is given)
        bus.publish_raw(TOPIC, str(n), Event(n=n, body="x" * BODY).model_dump_json().encode())
    await bus.start()
    await bus.stop()
    assert sum(batches) == 9 * BODY and max(batches) <= 350_000 and len(batches) >= 3


async def test_the_background_reads_the_hand_off_logs_no_faster_than_the_bus_has_room(tmp_path):
    """A background whose bus is small reads a flood of large events in rounds that fit it: they wait on disk (as the
    README promises: a slow background costs the proxies disk only), none is dropped, each arrives once."""
    worker = HandoffBus(
        tmp_path / "worker-0", CollectorRegistry(), buffer_max_bytes=64 << 20, max_bytes=64 << 20, flush_ms=10
    )
    await worker.start()
    sizes = [BODY] * 40 + [3 * CAP]  # 4 MB of events, and one larger than the whole bound
    for n, size in enumerate(sizes):
        worker.publish(TOPIC, str(n), Event(n=n, body="x" * size))
    await worker.stop()

    registry = CollectorRegistry()
    bus = InProcessBus(CAP, registry)
    seen: list[int] = []
    held: list[int] = []

    async def handle(events: list[int]) -> None:
        held.append(bus.held_bytes())
        seen.extend(events)

    def decode(delivery: Delivery) -> int:
        return orjson.loads(delivery.raw or b"")["n"]

    bus.subscribe(Subscription((TOPIC,), decode, handle, group="store", max_wait_s=0.01))
    await bus.start()
    marks: list[int] = []

    def mark():
        marks.append(len(marks))
        return bus.mark()

    reader = HandoffReader(tmp_path, bus.publish_raw, mark, bus.room, poll_s=0.01)
    await reader.start()  # as the background runs it: reading on while earlier rounds are handled
    while len(seen) < len(sizes):
        await asyncio.sleep(0.01)
    await reader.stop()
    await bus.stop()
    await reader.finish()
    rounds = len(marks)
    assert sorted(seen) == list(range(len(sizes))) and len(seen) == len(sizes)
    assert read_acked(tmp_path / "worker-0") == len(sizes) - 1
    assert dropped(registry) == 0
    assert rounds >= 5  # 4 MB in rounds of at most 1 MB
    big = [h for h in held if h > CAP]
    assert len(big) <= 1 and all(h <= 3 * CAP + 1000 for h in big)  # only the oversized event, and alone
    assert sum(1 for h in held if h <= CAP) >= rounds - 1
