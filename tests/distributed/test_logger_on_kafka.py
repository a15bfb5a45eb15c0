"""The logger on a real broker: malformed events become dead letters with their reason and the logger carries on;
while storage is down it backs off, keeps its offsets, and stores everything once storage is back."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import CollectorRegistry

from plumbing.bus.kafka import KafkaBus
from plumbing.bus.topics_admin import create_topics
from schemas import topics
from schemas.events import DeadLetter
from services.logger import rows
from services.logger.service import LoggerService
from tests.distributed.events import interaction
from tests.support.recording_store import RecordingStore


async def until(predicate, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def fold(rows) -> dict[str, dict]:
    """Each interaction's rows folded as the table does: the non-NULL values win."""
    folded: dict[str, dict] = {}
    for row in rows:
        folded.setdefault(row["interaction_id"], {}).update({k: v for k, v in row.items() if v is not None})
    return folded


async def dead_letters(bootstrap: str, keys: set[str], timeout: float = 60.0) -> dict[str, DeadLetter]:
    found: dict[str, DeadLetter] = {}
    consumer = AIOKafkaConsumer(
        topics.DEAD_LETTER, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=uuid.uuid4().hex
    )
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while keys - found.keys() and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    if record.key is not None and record.key.decode() in keys:
                        found[record.key.decode()] = DeadLetter.model_validate_json(record.value)
    finally:
        await consumer.stop()
    return found


async def test_the_logger_dead_letters_malformed_events_and_stores_the_rest_after_storage_comes_back(
    kafka_bootstrap, tmp_path
):
    await create_topics(kafka_bootstrap, partitions=3)
    agent = f"agent-{uuid.uuid4().hex[:8]}"
    events = [e for n in range(300) for e in interaction(agent, n)]
    producer = KafkaBus(kafka_bootstrap, client_id="producer", spool_dir=tmp_path / "p", registry=CollectorRegistry())
    await producer.start()
    for event in events[:300]:
        producer.publish(topics.REQUESTS if event.type == "request" else topics.RESPONSES, event.interaction_id, event)
    await producer.stop()
    broken = {f"broken-{uuid.uuid4().hex[:8]}": b'{"interaction_id": "x", "status": ', f"empty-{agent}": b"{}"}
    raw = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await raw.start()
    for key, payload in broken.items():
        await raw.send_and_wait(topics.RESPONSES, payload, key=key.encode())
    await raw.stop()
    producer = KafkaBus(kafka_bootstrap, client_id="producer", spool_dir=tmp_path / "p", registry=CollectorRegistry())
    await producer.start()
    for event in events[300:]:
        producer.publish(topics.REQUESTS if event.type == "request" else topics.RESPONSES, event.interaction_id, event)
    await producer.stop()

    store = RecordingStore(failures=3)  # ClickHouse away for the first attempts
    bus = KafkaBus(kafka_bootstrap, client_id="logger", spool_dir=tmp_path / "l", registry=CollectorRegistry())
    LoggerService(bus, store, CollectorRegistry(), max_batch=100, max_wait_s=0.05, group=uuid.uuid4().hex).register()
    expected = fold(rows.interaction_rows(events))

    def stored() -> dict[str, dict]:
        return fold(row for row in store.rows() if row["agent_id"] == agent)

    await bus.start()
    try:
        # Both halves of every interaction: the request and response events travel on different topics and
        # partitions, so the responses may all be stored while some requests are still on their way.
        await until(lambda: stored() == expected)
        letters = await dead_letters(kafka_bootstrap, set(broken))
    finally:
        await bus.stop()

    assert len(store.attempts) > len(store.inserts)
    assert stored() == expected
    assert set(letters) == set(broken)
    for key, letter in letters.items():
        assert letter.topic == topics.RESPONSES and letter.payload == broken[key].decode()
        assert letter.reason.startswith("invalid ResponseEvent")
