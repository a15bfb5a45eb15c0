"""Events as the ingress publishes them, built by hand for tests that feed a service directly."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from schemas.events import RequestEvent, ResponseEvent

INTERACTION_ID = "0b7f8c1e-5f0a-4c1e-9d7a-2f1e3c4b5a69"


def request_event(provider: str, route: str, body: object, interaction_id: str = INTERACTION_ID) -> RequestEvent:
    """The request event of ``body`` sent to ``provider``'s ``route``, as received, under the default profile."""
    return RequestEvent(
        interaction_id=interaction_id,
        started_at=datetime.now(UTC),
        profile_id="default",
        agent_id="agent-1",
        provider=provider,
        route=route,
        request_received=orjson.dumps(body).decode(),
    )


def response_event(provider: str, route: str, body: str, interaction_id: str = INTERACTION_ID) -> ResponseEvent:
    """The response event of an answer ``body`` (JSON or an event stream, as the upstream sent it), status 200."""
    now = datetime.now(UTC)
    return ResponseEvent(
        interaction_id=interaction_id,
        started_at=now,
        profile_id="default",
        agent_id="agent-1",
        provider=provider,
        route=route,
        status=200,
        response_body=body,
        finished_at=now,
        latency_ms=1.0,
    )


def chat_request_event(messages: list[dict], interaction_id: str = INTERACTION_ID) -> RequestEvent:
    """The request event of an OpenAI chat completion carrying ``messages``, under the default profile."""
    return request_event("openai", "/chat/completions", {"model": "gpt-4o", "messages": messages}, interaction_id)
