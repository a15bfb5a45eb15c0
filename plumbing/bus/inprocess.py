"""The embedded bus: in-process queues with the Kafka semantics the services rely on.

Each consumer group sees every event of its topics once, in batches; a batch is dropped from the queue only after
its handler returned, so a failing handler gets the same batch again (at-least-once, as with Kafka offsets). One
batch is handled at a time whatever ``max_in_flight`` says: the embedded consumers share the proxy's event loop.
Subscriptions decode the published models as they are (``Delivery.event``): here they exist already, and
serialising them would cost the proxy's process time for nothing.

Memory is bounded in bytes, not events (one event can carry megabytes of body): the bus holds at most ``max_bytes``
of events not yet handled by every subscription they were offered to, and a batch holds at most ``max_batch``
events and never more bytes than the bus. What happens when it is full depends on who publishes:

- ``publish_raw`` (``warden serve``'s background process, reading the proxies' hand-off logs): back-pressure. The
  reader asks ``room()`` and reads no more than that; what it has not read stays in the log on disk. While records
  wait for room it ``press()``-es the bus, which then counts as full.
- a subscription's handler (the guard's violations, dead letters): always taken. They follow from events the bus
  already holds, and dropping them would lose what was already accepted.
- anyone else (a request path publishing straight to the bus): the event is dropped, counted in
  ``warden_bus_dropped_events_total`` and logged. ``publish`` never blocks.

Whoever must know when what it published has been handled (``warden serve``'s background, to acknowledge the
hand-off logs) asks for a ``mark()``: it says when every event published before it, and every event a handler
published while handling one of them (the guard's violations, dead letters), has been handled by every subscription.
Marks let the reader go on publishing while the consumers wait for their batches to fill.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import BaseModel

from plumbing.bounded import approx_size
from plumbing.bus.base import Delivery, Subscription
from plumbing.bus.dispatch import Publish, deliver
from plumbing.settings import CommonSettings

log = logging.getLogger(__name__)
DEFAULT_MAX_BYTES: int = CommonSettings.model_fields["bus_memory_max_bytes"].default


class _Ticket:
    """The events published between two marks (and what handlers derived from them) not yet handled everywhere."""

    __slots__ = ("number", "outstanding")

    def __init__(self, number: int) -> None:
        self.number = number
        self.outstanding = 0

    def settled(self) -> bool:
        return self.outstanding == 0


class _Handling:
    """The batch a consumer's handler is working on: what it publishes follows from an event the bus holds already
    and is counted on the oldest ticket among the batch's events (marks are settled in order)."""

    __slots__ = ("_ticket", "batch")

    def __init__(self, batch: list[_Held]) -> None:
        self.batch = batch
        self._ticket: _Ticket | None = None

    def ticket(self) -> _Ticket:
        if self._ticket is None:
            self._ticket = min((held.ticket for held in self.batch), key=lambda ticket: ticket.number)
        return self._ticket


_HANDLING: ContextVar[_Handling | None] = ContextVar("warden_bus_handling", default=None)
"""Set in a consumer's task while its handler runs."""


_CARRIES_A_VIEW: dict[type[BaseModel], bool] = {}
"""Which event classes can carry a common view, looked up once per class: asking a pydantic model for an attribute
it lacks raises (and catches) an AttributeError, which costs more than the rest of ``event_bytes``."""


def event_bytes(event: BaseModel) -> int:
    """The memory an event holds, estimated: its fields walked (bodies are strings: their exact size), and the
    common view a request event may carry for in-process consumers (about the body it was built from again)."""
    size = approx_size(event)
    kind = type(event)
    carries = _CARRIES_A_VIEW.get(kind)
    if carries is None:
        carries = _CARRIES_A_VIEW[kind] = callable(getattr(kind, "attached_view", None))
    if carries and event.attached_view() is not None:  # type: ignore[attr-defined]
        body = event.request_sent or event.request_received  # type: ignore[attr-defined]
        size += sys.getsizeof(body)
    return size


class _Held:
    """One published event, shared by the queues of every consumer it was offered to; its bytes are given back
    when the last of them handled it."""

    __slots__ = ("delivery", "refs", "size", "ticket")

    def __init__(self, delivery: Delivery, size: int, refs: int, ticket: _Ticket) -> None:
        self.delivery = delivery
        self.size = size
        self.refs = refs
        self.ticket = ticket


class _Memory:
    """The bytes the bus holds, against its bound."""

    __slots__ = ("max_bytes", "pressed", "used")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0
        self.pressed = False
        """A publisher waits for room (``press``): until it publishes again, the bus counts as full."""

    def fits(self, size: int) -> bool:
        """An event larger than the whole bound is taken alone, when nothing else is held."""
        return self.used + size <= self.max_bytes or self.used == 0


class _Consumer:
    def __init__(self, subscription: Subscription[Any], publish: Publish, memory: _Memory) -> None:
        self.subscription = subscription
        self.publish = publish
        self.memory = memory
        self.queue: deque[_Held] = deque()
        self.wakeup = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.stopping = False

    def offer(self, held: _Held) -> None:
        self.queue.append(held)
        if self.full():
            self.wakeup.set()

    def full(self) -> bool:
        """A batch is ready now: ``max_batch`` events wait, or the bus is full (every consumer then frees what it
        can at once rather than after ``max_wait_s``)."""
        memory = self.memory
        return len(self.queue) >= self.subscription.max_batch or memory.used >= memory.max_bytes or memory.pressed

    def _batch(self) -> list[_Held]:
        """The oldest events, up to ``max_batch`` of them and (beyond the first) the bus's bound in bytes."""
        batch: list[_Held] = []
        size = 0
        for held in self.queue:
            if len(batch) >= self.subscription.max_batch or (batch and size + held.size > self.memory.max_bytes):
                break
            batch.append(held)
            size += held.size
        return batch

    async def run(self) -> None:
        sub = self.subscription
        backoff = 0.1
        while True:
            if not self.queue:
                if self.stopping:
                    return
                self.wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wakeup.wait(), sub.max_wait_s)
                continue
            if not self.full() and not self.stopping:
                # Let a batch fill up for at most max_wait_s: fewer, larger inserts.
                self.wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wakeup.wait(), sub.max_wait_s)
            batch = self._batch()
            _HANDLING.set(_Handling(batch))  # this task's context only: what the handler publishes is derived
            try:
                await deliver(sub, [held.delivery for held in batch], self.publish)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("consumer %s failed on a batch of %d; retrying in %.1fs", sub.group, len(batch), backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            for _ in batch:
                self._done(self.queue.popleft())

    def _done(self, held: _Held) -> None:
        held.refs -= 1
        if held.refs == 0:
            self.memory.used -= held.size
            held.ticket.outstanding -= 1

    @property
    def pending(self) -> int:
        return len(self.queue)


class InProcessBus:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, registry: CollectorRegistry | None = None) -> None:
        self._by_topic: dict[str, list[_Consumer]] = {}
        self._consumers: list[_Consumer] = []
        self._started = False
        self._memory = _Memory(max_bytes)
        self._dropping = 0  # events dropped since the bus was last found with room
        self._ticket = _Ticket(0)
        registry = registry if registry is not None else CollectorRegistry()
        Gauge(
            "warden_bus_memory_bytes",
            "Bytes of events the in-process bus holds until every subscription handled them",
            registry=registry,
        ).set_function(lambda: self._memory.used)
        self.dropped = Counter(
            "warden_bus_dropped_events_total",
            "Events dropped: the in-process bus was full (WARDEN_BUS_MEMORY_MAX_BYTES)",
            registry=registry,
        )

    @property
    def max_bytes(self) -> int:
        return self._memory.max_bytes

    def held_bytes(self) -> int:
        """Bytes of events published and not yet handled by every subscription they were offered to."""
        return self._memory.used

    def room(self) -> int:
        """Bytes that may still be published before the bus is full."""
        return max(self._memory.max_bytes - self._memory.used, 0)

    def press(self) -> None:
        """A publisher has more than the bus has room for (``warden serve``'s background, reading the hand-off logs):
        every consumer hands over what it holds now, as when the bus is full, rather than wait ``max_wait_s`` for a
        batch that cannot fill before room is made."""
        self._memory.pressed = True
        for consumer in self._consumers:
            if consumer.queue:
                consumer.wakeup.set()

    def mark(self) -> Callable[[], bool]:
        """Whether every event published so far, and whatever handlers publish while handling them, has been
        handled by every subscription it was offered to."""
        ticket, self._ticket = self._ticket, _Ticket(self._ticket.number + 1)
        return ticket.settled

    def subscribe(self, subscription: Subscription[Any]) -> None:
        consumer = _Consumer(subscription, self.publish, self._memory)
        self._consumers.append(consumer)
        for topic in subscription.topics:
            self._by_topic.setdefault(topic, []).append(consumer)
        if self._started:
            consumer.task = asyncio.get_running_loop().create_task(consumer.run())

    def publish(self, topic: str, key: str, event: BaseModel) -> None:
        """Never blocks. Full: taken when a handler publishes it, else dropped, counted and logged."""
        consumers = self._by_topic.get(topic)
        if not consumers:
            return
        size = event_bytes(event)
        if not self._memory.fits(size) and _HANDLING.get() is None:
            self._drop(topic, size)
            return
        self._offer(consumers, Delivery(topic=topic, key=key, event=event), size)

    def publish_raw(self, topic: str, key: str, payload: bytes) -> None:
        """An event as JSON bytes (read from ``warden serve``'s hand-off): each subscription decodes it as from
        Kafka. Always taken: the caller sizes what it publishes by ``room()`` (the rest waits on its disk)."""
        consumers = self._by_topic.get(topic)
        if consumers:
            self._offer(consumers, Delivery(topic=topic, key=key, event=None, raw=payload), sys.getsizeof(payload))

    def _offer(self, consumers: list[_Consumer], delivery: Delivery, size: int) -> None:
        if self._dropping:
            log.warning("in-process bus has room again", extra={"fields": {"dropped_while_full": self._dropping}})
            self._dropping = 0
        handling = _HANDLING.get()
        if handling is None:
            self._memory.pressed = False
        ticket = self._ticket if handling is None else handling.ticket()
        ticket.outstanding += 1
        held = _Held(delivery, size, len(consumers), ticket)
        self._memory.used += size
        for consumer in consumers:
            consumer.offer(held)

    def _drop(self, topic: str, size: int) -> None:
        self.dropped.inc()
        if not self._dropping:
            log.error(
                "in-process bus full: dropping events until its subscriptions catch up",
                extra={
                    "fields": {
                        "topic": topic,
                        "event_bytes": size,
                        "held_bytes": self._memory.used,
                        "max_bytes": self._memory.max_bytes,
                    }
                },
            )
        self._dropping += 1

    async def start(self) -> None:
        self._started = True
        loop = asyncio.get_running_loop()
        for consumer in self._consumers:
            if consumer.task is None:
                consumer.task = loop.create_task(consumer.run())

    async def stop(self) -> None:
        # Consumers may publish while they drain (the guard's violations, for the logger): drain until all is quiet.
        while True:
            for consumer in self._consumers:
                consumer.stopping = True
                consumer.wakeup.set()
            tasks = [c.task for c in self._consumers if c.task is not None]
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            if not any(c.pending for c in self._consumers):
                break
            loop = asyncio.get_running_loop()
            for consumer in self._consumers:
                consumer.task = loop.create_task(consumer.run())
        self._started = False

    def pending(self) -> int:
        return sum(c.pending for c in self._consumers)
