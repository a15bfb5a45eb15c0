"""The embedded bus: in-process queues with the Kafka semantics the services rely on.

Each consumer group sees every event of its topics once, in batches; a batch is dropped from the queue only after
its handler returned, so a failing handler gets the same batch again (at-least-once, as with Kafka offsets). One
batch is handled at a time whatever ``max_in_flight`` says: the embedded consumers share the proxy's event loop.
Subscriptions decode the published models as they are (``Delivery.event``): here they exist already, and
serialising them would cost the proxy's process time for nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

from pydantic import BaseModel

from plumbing.bus.base import Delivery, Subscription
from plumbing.bus.dispatch import Publish, deliver

log = logging.getLogger(__name__)


class _Consumer:
    def __init__(self, subscription: Subscription[Any], publish: Publish) -> None:
        self.subscription = subscription
        self.publish = publish
        self.queue: deque[Delivery] = deque()
        self.wakeup = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.stopping = False

    def offer(self, delivery: Delivery) -> None:
        self.queue.append(delivery)
        if len(self.queue) >= self.subscription.max_batch:
            self.wakeup.set()

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
            if len(self.queue) < sub.max_batch and not self.stopping:
                # Let a batch fill up for at most max_wait_s: fewer, larger inserts.
                self.wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wakeup.wait(), sub.max_wait_s)
            batch = [self.queue[i] for i in range(min(len(self.queue), sub.max_batch))]
            try:
                await deliver(sub, batch, self.publish)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("consumer %s failed on a batch of %d; retrying in %.1fs", sub.group, len(batch), backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            for _ in batch:
                self.queue.popleft()

    @property
    def pending(self) -> int:
        return len(self.queue)


class InProcessBus:
    def __init__(self) -> None:
        self._by_topic: dict[str, list[_Consumer]] = {}
        self._consumers: list[_Consumer] = []
        self._started = False

    def subscribe(self, subscription: Subscription[Any]) -> None:
        consumer = _Consumer(subscription, self.publish)
        self._consumers.append(consumer)
        for topic in subscription.topics:
            self._by_topic.setdefault(topic, []).append(consumer)
        if self._started:
            consumer.task = asyncio.get_running_loop().create_task(consumer.run())

    def publish(self, topic: str, key: str, event: BaseModel) -> None:
        for consumer in self._by_topic.get(topic, ()):
            consumer.offer(Delivery(topic=topic, key=key, event=event))

    def publish_raw(self, topic: str, key: str, payload: bytes) -> None:
        """An event as JSON bytes (read from ``warden serve``'s hand-off): each subscription decodes it as from
        Kafka."""
        for consumer in self._by_topic.get(topic, ()):
            consumer.offer(Delivery(topic=topic, key=key, event=None, raw=payload))

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
