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
    """The decoded event, or None when the payload could not be decoded (see ``error``)."""
    raw: bytes | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Subscription:
    topics: Sequence[str]
    group: str
    handler: BatchHandler
    max_batch: int = 5000
    max_wait_s: float = 0.2


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
