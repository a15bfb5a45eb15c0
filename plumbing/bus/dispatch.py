"""One batch of messages → a subscription's handler: the steps both buses take.

Each message is decoded by the subscription; what does not decode goes to the dead-letter topic with the reason (the
payload as it came, or the published model as JSON), and the handler gets the rest. Dead letters are published
before the handler runs and the batch is acknowledged only after it returned, so a batch delivered again (the handler
failed, or the consumer died before its commit) sends its dead letters again: at least once, as every event.
"""

from __future__ import annotations

import asyncio
import logging
import time
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
TURN_S = 0.0005
"""The longest a loop over a batch (decoding it, encoding it for the broker) runs before it lets the event loop serve
others: a big batch must not hold up requests (the proxy's, in the embedded default and in the ingress's producer),
the Kafka client's heartbeats or the fetch of the next batch for the whole batch."""


class Turn:
    """Keeps a long loop over a batch from holding the event loop: ``share`` yields to it once the loop has run for
    ``slice_s`` (``TURN_S``) since it last did. Decoding, or encoding and handing a thousand events to the producer,
    takes several milliseconds; in one go, a request that arrives meanwhile would wait all of it (the proxy's tail)."""

    __slots__ = ("_since", "slice_s")

    def __init__(self, slice_s: float | None = None) -> None:
        self.slice_s = TURN_S if slice_s is None else slice_s
        self._since = time.perf_counter()

    async def share(self) -> None:
        now = time.perf_counter()
        if now - self._since >= self.slice_s:
            await asyncio.sleep(0)
            self._since = time.perf_counter()


async def deliver(subscription: Subscription[T], batch: list[Delivery], publish: Publish) -> None:
    """Decode the batch, dead-letter what does not decode, and hand the rest to the handler (raises what it raises)."""
    events: list[T] = []
    decode = subscription.decode
    turn = Turn()
    for delivery in batch:
        await turn.share()
        try:
            events.append(decode(delivery))
        except Undecodable as exc:
            dead_letter(subscription, delivery, str(exc), publish)
        except Exception as exc:  # a decoder that fails otherwise must not stop the stream either
            dead_letter(subscription, delivery, f"cannot decode: {type(exc).__name__}: {str(exc)[:200]}", publish)
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
