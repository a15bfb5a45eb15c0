"""Events as the ingress publishes them, built by hand for tests that feed a service directly."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from schemas.events import RequestEvent


def chat_request_event(
    messages: list[dict], interaction_id: str = "0b7f8c1e-5f0a-4c1e-9d7a-2f1e3c4b5a69", agent_id: str = "agent-1"
) -> RequestEvent:
    """The request event of an OpenAI chat completion carrying ``messages``, under the default profile."""
    body = {"model": "gpt-4o", "messages": messages}
    return RequestEvent(
        interaction_id=interaction_id,
        started_at=datetime.now(UTC),
        profile_id="default",
        agent_id=agent_id,
        provider="openai",
        model="gpt-4o",
        route="/chat/completions",
        request_received=orjson.dumps(body).decode(),
    )
