"""The Kafka bus on a real broker: delivery, commit-after-durable, redelivery, dead letters, large bodies."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import CollectorRegistry

from plumbing.bus.base import Delivery, Subscription, Undecodable
from plumbing.bus.kafka import KafkaBus
from plumbing.bus.topics_admin import create_topics
from schemas import topics
from schemas.events import DeadLetter, RequestEvent, ResponseEvent
from tests.distributed.events import interaction
from tests.support.consumer_groups import behind, end_offsets


@pytest.fixture
async def topics_ready(kafka_bootstrap):
    await create_topics(kafka_bootstrap, partitions=3)
    return kafka_bootstrap


def bus(bootstrap: str, tmp_path, name: str) -> KafkaBus:
    return KafkaBus(bootstrap, client_id=name, spool_dir=tmp_path / name, registry=CollectorRegistry())


async def until(predicate, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def until_committed(bootstrap: str, group: str, ends) -> None:
    deadline = asyncio.get_running_loop().time() + 60
    while (left := await behind(bootstrap, group, ends)) > 0:
        assert asyncio.get_running_loop().time() < deadline, f"{left} messages never committed"
        await asyncio.sleep(0.2)


async def test_events_reach_a_consumer_group_keyed_by_interaction(topics_ready, tmp_path):
    group = f"g-{uuid.uuid4().hex[:8]}"
    agent = f"agent-{uuid.uuid4().hex[:8]}"
    seen: list[RequestEvent] = []

    async def handler(events: list[RequestEvent]) -> None:
        seen.extend(e for e in events if e.agent_id == agent)

    consumer = bus(topics_ready, tmp_path, "consumer")
    consumer.subscribe(Subscription((topics.REQUESTS,), RequestEvent, handler, group=group, max_wait_s=0.1))
    producer = bus(topics_ready, tmp_path, "producer")
    await consumer.start()
    await producer.start()
    sent = [interaction(agent, n)[0] for n in range(50)]
    for event in sent:
        producer.publish(topics.REQUESTS, event.interaction_id, event)
    await until(lambda: len(seen) >= 50)
    await producer.stop(timeout=60)
    await consumer.stop()
    assert sorted(e.model_dump_json() for e in seen) == sorted(e.model_dump_json() for e in sent)


async def test_a_failing_handler_gets_the_same_batch_again_and_offsets_wait_for_success(topics_ready, tmp_path):
    group = f"g-{uuid.uuid4().hex[:8]}"
    agent = f"agent-{uuid.uuid4().hex[:8]}"
    attempts: list[int] = []
    handled: set[str] = set()

    async def flaky(events: list[RequestEvent]) -> None:
        mine = [e for e in events if e.agent_id == agent]
        if mine and len(attempts) < 2:
            attempts.append(len(mine))
            raise RuntimeError("storage is down")
        handled.update(e.interaction_id for e in mine)

    producer = bus(topics_ready, tmp_path, "producer")
    await producer.start()
    sent = [interaction(agent, n)[0] for n in range(20)]
    for event in sent:
        producer.publish(topics.REQUESTS, event.interaction_id, event)
    await producer.stop(timeout=60)
    ends = await end_offsets(topics_ready, (topics.REQUESTS,))

    consumer = bus(topics_ready, tmp_path, "consumer")
    consumer.subscribe(Subscription((topics.REQUESTS,), RequestEvent, flaky, group=group, max_wait_s=0.2))
    await consumer.start()
    await until(lambda: len(handled) == 20)
    # Committed: the group's offsets reach the end of what was there once ours were published.
    await until_committed(topics_ready, group, ends)
    await consumer.stop()
    assert len(attempts) == 2


async def test_a_malformed_event_goes_to_the_dead_letter_topic_with_the_reason_and_the_rest_to_the_handler(
    topics_ready, tmp_path
):
    group = f"g-{uuid.uuid4().hex[:8]}"
    marker = uuid.uuid4().hex
    agent = f"agent-{uuid.uuid4().hex[:8]}"
    handled: list[ResponseEvent] = []
    counted: list[DeadLetter] = []

    async def handler(events: list[ResponseEvent]) -> None:
        handled.extend(e for e in events if e.agent_id == agent)

    consumer = bus(topics_ready, tmp_path, "consumer")
    consumer.subscribe(
        Subscription(
            (topics.RESPONSES,), ResponseEvent, handler, group=group, max_wait_s=0.1, on_dead_letter=counted.append
        )
    )
    await consumer.start()
    broken = b'{"not": "an event", "marker": "' + marker.encode() + b'"}'
    _, response = interaction(agent, 1)
    raw = AIOKafkaProducer(bootstrap_servers=topics_ready)
    await raw.start()
    await raw.send_and_wait(topics.RESPONSES, broken, key=marker.encode())
    await raw.send_and_wait(topics.RESPONSES, response.model_dump_json().encode(), key=b"k")
    await raw.stop()
    letters = await dead_letters(topics_ready, marker)
    await until(lambda: handled)
    await consumer.stop()
    assert handled == [response]
    (letter,) = letters
    assert letter.topic == topics.RESPONSES and letter.key == marker and letter.payload == broken.decode()
    assert letter.reason.startswith("invalid ResponseEvent")
    assert [c.key for c in counted if c.key == marker] == [marker]


async def dead_letters(bootstrap: str, key: str, timeout: float = 30.0) -> list[DeadLetter]:
    consumer = AIOKafkaConsumer(
        topics.DEAD_LETTER, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=uuid.uuid4().hex
    )
    await consumer.start()
    found: list[DeadLetter] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not found and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found += [DeadLetter.model_validate_json(r.value) for r in records if r.key == key.encode()]
    finally:
        await consumer.stop()
    return found


async def test_bodies_of_several_megabytes_get_through(topics_ready, tmp_path):
    agent = f"agent-{uuid.uuid4().hex[:8]}"
    request, _ = interaction(agent, 1, body_bytes=6 * 1024 * 1024)
    producer = bus(topics_ready, tmp_path, "producer")
    await producer.start()
    producer.publish(topics.REQUESTS, request.interaction_id, request)
    await producer.stop(timeout=60)
    assert producer.delivered.labels(topics.REQUESTS)._value.get() == 1

    consumer = AIOKafkaConsumer(
        topics.REQUESTS,
        bootstrap_servers=topics_ready,
        auto_offset_reset="earliest",
        group_id=f"g-{uuid.uuid4().hex[:8]}",
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        found = None
        for _ in range(50):
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    if record.key == request.interaction_id.encode():
                        found = record
            if found:
                break
    finally:
        await consumer.stop()
    assert found is not None and RequestEvent.model_validate_json(found.value) == request


async def test_with_batches_in_flight_a_failed_batch_is_read_again_and_all_is_committed(topics_ready, tmp_path):
    group = f"g-{uuid.uuid4().hex[:8]}"
    agent = f"agent-{uuid.uuid4().hex[:8]}"
    producer = bus(topics_ready, tmp_path, "producer")
    await producer.start()
    sent = [interaction(agent, n)[0] for n in range(120)]
    for event in sent:
        producer.publish(topics.REQUESTS, event.interaction_id, event)
    await producer.stop(timeout=60)
    ends = await end_offsets(topics_ready, (topics.REQUESTS,))

    running, most_running = 0, 0
    calls: list[list[str]] = []
    failed: list[str] = []
    handled: set[str] = set()

    def payload(delivery: Delivery) -> dict:
        """A decoder of one's own: the payload as it came, no model built."""
        if delivery.raw is None:
            raise Undecodable("a payload was expected")
        return orjson.loads(delivery.raw)

    async def slow_flaky(documents: list[dict]) -> None:
        nonlocal running, most_running
        mine = [d["interaction_id"] for d in documents if d["agent_id"] == agent]
        running += 1
        most_running = max(most_running, running)
        try:
            if mine:
                await asyncio.sleep(0.05)  # a write that takes a while: the next batch starts meanwhile
                calls.append(mine)
                if len(calls) == 3:
                    failed.extend(mine)
                    raise RuntimeError("storage is down")
            handled.update(mine)
        finally:
            running -= 1

    consumer = bus(topics_ready, tmp_path, "consumer")
    consumer.subscribe(
        Subscription(
            (topics.REQUESTS,), payload, slow_flaky, group=group, max_batch=10, max_wait_s=0.05, max_in_flight=2
        )
    )
    await consumer.start()
    await until(lambda: len(handled) == len(sent))
    # Committed, in order, up to the end of what was there once ours were published.
    await until_committed(topics_ready, group, ends)
    await consumer.stop()
    assert most_running <= 2
    # The failed batch's events come again, in calls after the one that failed.
    assert failed and all(any(i in call for call in calls[3:]) for i in failed)
    assert handled == {e.interaction_id for e in sent}
