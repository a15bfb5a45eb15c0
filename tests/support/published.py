"""What the ingress publishes, as the bus carries it: for tests that check a value is in no event."""

from __future__ import annotations

from plumbing.bus.base import Subscription
from schemas import topics
from schemas.events import RequestEvent, ResponseEvent


def published_events(warden, group: str) -> list[str]:
    """Every request and response event published from now on, as JSON text (filled as they arrive), seen through a
    subscription of its own (``group``)."""
    seen: list[str] = []

    async def keep(events: list[RequestEvent | ResponseEvent]) -> None:
        seen.extend(event.model_dump_json() for event in events)

    async def subscribe(embedded) -> None:
        embedded.bus.subscribe(
            Subscription(
                [topics.REQUESTS, topics.RESPONSES], RequestEvent | ResponseEvent, keep, group=group, max_wait_s=0.01
            )
        )

    warden.call(subscribe)
    return seen
