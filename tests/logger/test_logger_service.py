"""The logger service: what it stores, what it dead-letters, and how it behaves when storage fails."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from plumbing.bus.base import Delivery
from plumbing.bus.dispatch import deliver
from plumbing.bus.inprocess import InProcessBus
from schemas import topics
from schemas.events import DeadLetter, Evidence, ViolationEvent
from services.logger import rows
from services.logger.service import LoggerService
from tests.distributed.events import interaction
from tests.support.agents import new_agent
from tests.support.recording_store import RecordingStore


class RecordingBus(InProcessBus):
    def __init__(self) -> None:
        super().__init__()
        self.published: list[tuple[str, str, BaseModel]] = []

    def publish(self, topic: str, key: str, event: BaseModel) -> None:
        self.published.append((topic, key, event))
        super().publish(topic, key, event)

    def dead_letters(self) -> list[DeadLetter]:
        return [e for t, _, e in self.published if t == topics.DEAD_LETTER and isinstance(e, DeadLetter)]


def raw(event: BaseModel) -> Delivery:
    topic = {"request": topics.REQUESTS, "response": topics.RESPONSES}.get(
        getattr(event, "type", ""), topics.VIOLATIONS
    )
    return Delivery(topic, getattr(event, "interaction_id", None), None, event.model_dump_json().encode())


def violation(n: int, interaction_id: str) -> ViolationEvent:
    return ViolationEvent(
        violation_id=f"v-{interaction_id}-{n}",
        interaction_id=interaction_id,
        detected_at="2026-03-14T15:09:26Z",
        detector="injection",
        category="prompt_injection",
        severity="high",
        score=0.9,
        evidence=Evidence(location="request.messages[1]"),
        profile_id="default",
    )


def service(store: RecordingStore, bus: InProcessBus | None = None, **options: Any) -> LoggerService:
    return LoggerService(bus or RecordingBus(), store, CollectorRegistry(), **options)


async def handle(logger: LoggerService, batch: list[Delivery], bus: InProcessBus | None = None) -> None:
    """One batch through the logger's subscription, as either bus hands it over."""
    await deliver(logger.subscription, batch, (bus or RecordingBus()).publish)


async def test_a_batch_becomes_one_row_per_interaction_and_one_per_violation():
    store = RecordingStore()
    logger = service(store)
    events = [e for n in range(5) for e in interaction(new_agent(), n)]
    found = [violation(1, events[0].interaction_id), violation(2, events[0].interaction_id)]
    await handle(logger, [raw(e) for e in [*events, *found, found[0]]])  # one violation delivered twice
    assert store.rows() == rows.interaction_rows(events)
    assert store.rows("warden.violations") == [rows.violation_row(v) for v in found]


async def test_malformed_events_are_dead_lettered_with_their_reason_and_the_rest_is_stored():
    bus = RecordingBus()
    store = RecordingStore()
    logger = service(store, bus)
    request, response = interaction(new_agent(), 1)
    not_json = Delivery(topics.RESPONSES, "k1", None, b'{"status": 200, "body": "cut sho')
    missing = Delivery(topics.RESPONSES, "k2", None, orjson.dumps({"interaction_id": request.interaction_id}))
    poison = raw(request.model_copy(update={"interaction_id": "not-a-uuid"}))
    await handle(logger, [raw(request), not_json, missing, poison, raw(response)], bus)

    assert store.rows() == rows.interaction_rows([request, response])
    letters = bus.dead_letters()
    assert [(d.topic, d.key) for d in letters] == [
        (topics.RESPONSES, "k1"),
        (topics.RESPONSES, "k2"),
        (topics.REQUESTS, "not-a-uuid"),
    ]
    assert "invalid ResponseEvent" in letters[0].reason and letters[0].payload.startswith('{"status": 200')
    assert "started_at: Field required" in letters[1].reason and "and 3 more" in letters[1].reason
    assert "interaction_id is not a UUID" in letters[2].reason and '"not-a-uuid"' in letters[2].payload


async def test_a_redelivered_batch_carries_the_same_dedup_token_and_another_batch_another():
    store = RecordingStore()
    logger = service(store)
    batch = [raw(e) for n in range(3) for e in interaction(new_agent(), n)]
    await handle(logger, batch)
    await handle(logger, batch)
    await handle(logger, batch[:-1])
    tokens = [token for _, _, token in store.inserts]
    assert tokens[0] == tokens[1] != tokens[2]
    assert all(token.startswith("interactions-") for token in tokens)


async def test_while_storage_is_down_the_batch_is_retried_with_its_token_and_nothing_is_lost():
    bus = RecordingBus()
    store = RecordingStore(failures=3)
    logger = service(store, bus, max_batch=100, max_wait_s=0.01)
    logger.register()
    await bus.start()
    events = [e for n in range(40) for e in interaction(new_agent(), n)]
    for event in events:
        bus.publish(topics.REQUESTS if event.type == "request" else topics.RESPONSES, event.interaction_id, event)
    for _ in range(400):
        if len(store.rows()) == 40 and not bus.pending():
            break
        await asyncio.sleep(0.05)
    await bus.stop()
    assert len(store.attempts) == 4 and len(store.inserts) == 1
    assert len({token for _, _, token in store.attempts}) == 1
    assert store.rows() == rows.interaction_rows(events)
    assert bus.dead_letters() == []


async def test_on_the_in_process_bus_the_logger_stores_the_published_models_as_it_stores_payloads_from_kafka():
    """Embedded, nothing is serialised for the logger: it takes the models and stores what it stores from Kafka."""
    bus = RecordingBus()
    store = RecordingStore()
    logger = service(store, bus, max_wait_s=0.01)
    logger.register()
    await bus.start()
    request, response = interaction(new_agent(), 1)
    bus.publish(topics.REQUESTS, request.interaction_id, request)
    bus.publish(topics.RESPONSES, response.interaction_id, response)
    await bus.stop()
    from_kafka = RecordingStore()
    await handle(service(from_kafka), [raw(request), raw(response)])
    assert store.rows() == from_kafka.rows() == rows.interaction_rows([request, response])
    assert bus.dead_letters() == []


async def test_a_model_the_table_cannot_hold_is_dead_lettered_on_the_in_process_bus_too():
    bus = RecordingBus()
    store = RecordingStore()
    registry = CollectorRegistry()
    LoggerService(bus, store, registry, max_wait_s=0.01).register()
    await bus.start()
    request, _ = interaction(new_agent(), 1)
    poison = request.model_copy(update={"interaction_id": "not-a-uuid"})
    bus.publish(topics.REQUESTS, "not-a-uuid", poison)
    bus.publish(topics.REQUESTS, request.interaction_id, request)
    await bus.stop()
    assert store.rows() == rows.interaction_rows([request])
    (letter,) = bus.dead_letters()
    assert letter.topic == topics.REQUESTS and letter.key == "not-a-uuid"
    assert "interaction_id is not a UUID" in letter.reason and letter.payload == poison.model_dump_json()
    assert registry.get_sample_value("warden_logger_dead_letters_total") == 1
