"""The bus: publish events by topic and key; consume them as subscriptions, in batches per consumer group.

Two implementations share this interface: the in-process bus (embedded default) and Kafka (distributed). Services
only see this module, so nothing above it knows which one runs.

A subscription names its topics, the events it takes and a handler of a batch of them:

    bus.subscribe(Subscription((topics.REQUESTS, topics.RESPONSES), RequestEvent | ResponseEvent, handle, group=…))

The bus decodes each message into one of those events (the topic's model, ``schemas.events.TOPIC_MODELS``), or
with the subscription's own decoder, and hands the handler only what decoded; a message that does not decode goes
to the dead-letter topic with the reason (``plumbing/bus/dispatch.py``). Both implementations go through the same
steps, so a handler never sees a payload it has to check.

Not faststream's subscribers, although they read the same way: their decoding belongs to a consumer loop of their
own (a batch handler typed ``list[Model]`` fails the whole batch on one bad message, with no dead letter and its
reason), while ours keeps batches bounded in bytes, several in flight with offsets committed in order, and runs
in-process too. faststream describes the topics (``warden/asyncapi.py``).
"""

from __future__ import annotations

import types
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from schemas.events import TOPIC_MODELS, DeadLetter

Event = BaseModel
T = TypeVar("T")


@dataclass(slots=True)
class Delivery:
    """A message as it reaches a subscription, before it is decoded."""

    topic: str
    key: str | None
    event: BaseModel | None
    """The published model: the in-process bus hands them over as they are (nothing is serialised in-process)."""
    raw: bytes | None = None
    """The payload as JSON bytes, from Kafka."""


class Undecodable(Exception):
    """A message a subscription cannot take; the message is the reason its dead letter carries."""


Decoder = Callable[[Delivery], T]
"""A message → the subscription's event, or ``Undecodable``. A decoder must take both forms of a delivery: the
published model (in-process) and the JSON payload (Kafka)."""


def validation_summary(exc: ValidationError) -> str:
    """The first few errors, where and what, without the input (which may hold megabytes of body)."""
    found = exc.errors(include_url=False, include_input=False)
    text = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(event)'}: {e['msg']}" for e in found[:3])
    return text + (f"; and {len(found) - 3} more" if len(found) > 3 else "")


def topic_model(delivery: Delivery) -> BaseModel:
    """The delivery's event as its topic's model: the published one, or the payload validated."""
    if delivery.event is not None:
        return delivery.event
    model = TOPIC_MODELS.get(delivery.topic)
    if model is None:
        raise Undecodable(f"no event model for topic {delivery.topic}")
    try:
        return model.model_validate_json(delivery.raw or b"")
    except ValidationError as exc:
        raise Undecodable(f"invalid {model.__name__}: {validation_summary(exc)}") from None
    except ValueError as exc:
        raise Undecodable(f"undecodable payload: {exc}") from None


def models(accepted: type[BaseModel] | types.UnionType) -> Decoder[Any]:
    """The decoder of a subscription that takes the topic's models of the given types."""

    def decode(delivery: Delivery) -> BaseModel:
        event = topic_model(delivery)
        if not isinstance(event, accepted):
            raise Undecodable(f"unexpected {type(event).__name__} on {delivery.topic}")
        return event

    return decode


@dataclass(frozen=True, slots=True)
class Subscription(Generic[T]):
    topics: Sequence[str]
    events: type[BaseModel] | types.UnionType | Decoder[T]
    """The events the handler takes: a model, a union of models (decoded as the topic's model), or a decoder of
    one's own (the logger builds rows straight from the payloads)."""
    handler: Callable[[list[T]], Awaitable[None]]
    """Handles one batch of decoded events. When it returns, the batch is acknowledged (offsets committed); when it
    raises, the bus delivers the same batch again after a back-off, so a handler must only return once its effect is
    durable. Not called for a batch in which nothing decoded."""
    group: str
    max_batch: int = 5000
    """Events in one batch at most; a batch is bounded in bytes too (Kafka: ``BATCH_MAX_BYTES`` of payloads; in-process:
    the bus's own bound, ``WARDEN_BUS_MEMORY_MAX_BYTES``), however few events that is."""
    max_wait_s: float = 0.2
    max_in_flight: int = 1
    """Batches whose handlers may run at once (Kafka): the next batch's handler starts while the previous one still
    writes. Batches are acknowledged in order, each only after its own handler and every earlier one returned."""
    on_dead_letter: Callable[[DeadLetter], None] | None = None
    """Called for each message sent to the dead-letter topic (to count them)."""
    decode: Decoder[T] = field(init=False)

    def __post_init__(self) -> None:
        given = self.events
        decode = models(given) if isinstance(given, type | types.UnionType) else given
        object.__setattr__(self, "decode", decode)


class Bus(Protocol):
    def publish(self, topic: str, key: str, event: BaseModel) -> None:
        """Hand the event to the bus. Never blocks and never waits on a broker."""

    def subscribe(self, subscription: Subscription[Any]) -> None:
        """Register a consumer; it runs between ``start`` and ``stop``."""

    async def start(self) -> None: ...

    async def stop(self) -> None:
        """Deliver what was published before the call to every consumer (or to the broker), then stop."""

    def pending(self) -> int:
        """Events published and not yet handed on."""
