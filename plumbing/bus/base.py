"""The bus: publish events by topic and key, consume them in batches per consumer group.

Two implementations share this interface: the in-process bus (embedded default) and Kafka (distributed). Services
only see this module, so nothing above it knows which one runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel

Event = BaseModel
BatchHandler = Callable[[list["Delivery"]], Awaitable[None]]
"""Handles one batch. When it returns, the batch is acknowledged (offsets committed); when it raises, the bus
redelivers the same batch after a back-off, so a handler must only return once its effect is durable."""


@dataclass(slots=True)
class Delivery:
    topic: str
    key: str | None
    event: BaseModel | None
    """The decoded event; None when the payload could not be decoded (see ``error``), or when Kafka delivers to a
    subscription that does not decode (``Subscription.decode`` False)."""
    raw: bytes | None = None
    """The payload as JSON bytes, from Kafka; the in-process bus delivers the published models only."""
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Subscription:
    topics: Sequence[str]
    group: str
    handler: BatchHandler
    max_batch: int = 5000
    max_wait_s: float = 0.2
    decode: bool = True
    """False: Kafka deliveries carry the payload's JSON bytes only (``raw``) and the handler validates them itself,
    for a consumer that needs plain data rather than the models and should not pay for building them. The handler
    must also take deliveries with models: the in-process bus has them already and passes them as they are."""
    max_in_flight: int = 1
    """Batches whose handlers may run at once (Kafka): the next batch's handler starts while the previous one still
    writes. Batches are acknowledged in order, each only after its own handler and every earlier one returned."""


class Bus(Protocol):
    def publish(self, topic: str, key: str, event: BaseModel) -> None:
        """Hand the event to the bus. Never blocks and never waits on a broker."""

    def subscribe(self, subscription: Subscription) -> None:
        """Register a consumer; it runs between ``start`` and ``stop``."""

    async def start(self) -> None: ...

    async def stop(self) -> None:
        """Deliver what was published before the call to every consumer (or to the broker), then stop."""

    def pending(self) -> int:
        """Events published and not yet handed on."""
