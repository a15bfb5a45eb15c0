"""What the ingress publishes, as the bus carries it: for tests that check a value is in no event."""

from __future__ import annotations

import json
import threading

import pytest

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


def assert_secret_nowhere(
    warden, item: dict, published: list[str], caplog: pytest.LogCaptureFixture, secret: str
) -> None:
    """``secret`` is in neither the record of the interaction ``item`` names (its detail, its list row), nor its two
    events (seen through ``published_events``), nor any log line Warden wrote."""
    assert secret not in json.dumps(warden.detail(item["interaction_id"]))
    assert secret not in json.dumps(warden.interactions(agent_id=item["agent_id"]))
    ours = [event for event in published if item["interaction_id"] in event]
    assert len(ours) == 2, "the request and response events were not both seen"
    assert not any(secret in event for event in ours)
    # Every record but the test client's (this thread) and uvicorn's access log, which Warden turns off (pytest's
    # capture handlers are what switch it on here).
    others = [r for r in caplog.records if r.thread != threading.get_ident() and r.name != "uvicorn.access"]
    assert not any(secret in record.getMessage() or secret in str(record.args) for record in others)
