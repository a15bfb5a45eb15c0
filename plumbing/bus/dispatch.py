"""One batch of messages → a subscription's handler: the steps both buses take.

Each message is decoded by the subscription; what does not decode goes to the dead-letter topic with the reason (the
payload as it came, or the published model as JSON), and the handler gets the rest. Dead letters are published
before the handler runs and the batch is acknowledged only after it returned, so a batch delivered again (the handler
failed, or the consumer died before its commit) sends its dead letters again: at least once, as every event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from plumbing.bus.base import Delivery, Subscription, Undecodable
from schemas import topics
from schemas.events import DeadLetter

log = logging.getLogger(__name__)
T = TypeVar("T")
Publish = Callable[[str, str, BaseModel], None]
YIELD_EVERY = 2000
"""Messages decoded between two turns of the event loop: a big batch must not hold up the Kafka client's heartbeats,
the fetch of the next batch, or (embedded) the proxy, for the whole batch."""


async def deliver(subscription: Subscription[T], batch: list[Delivery], publish: Publish) -> None:
    """Decode the batch, dead-letter what does not decode, and hand the rest to the handler (raises what it raises)."""
    events: list[T] = []
    decode = subscription.decode
    for n, delivery in enumerate(batch, 1):
        try:
            events.append(decode(delivery))
        except Undecodable as exc:
            dead_letter(subscription, delivery, str(exc), publish)
        except Exception as exc:  # a decoder that fails otherwise must not stop the stream either
            dead_letter(subscription, delivery, f"cannot decode: {type(exc).__name__}: {str(exc)[:200]}", publish)
        if n % YIELD_EVERY == 0:
            await asyncio.sleep(0)
    if events:
        await subscription.handler(events)


def dead_letter(subscription: Subscription[Any], delivery: Delivery, reason: str, publish: Publish) -> None:
    log.warning(
        "malformed event sent to the dead-letter topic",
        extra={"fields": {"group": subscription.group, "topic": delivery.topic, "reason": reason}},
    )
    if delivery.raw is not None:
        payload = delivery.raw.decode("utf-8", "replace")
    else:
        payload = delivery.event.model_dump_json() if delivery.event is not None else ""
    letter = DeadLetter(
        topic=delivery.topic, key=delivery.key, reason=reason, payload=payload, failed_at=datetime.now(UTC)
    )
    publish(topics.DEAD_LETTER, delivery.key or "", letter)
    if subscription.on_dead_letter is not None:
        subscription.on_dead_letter(letter)
