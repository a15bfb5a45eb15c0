"""Realistic request/response event pairs for the distributed tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from schemas.events import RequestEvent, ResponseEvent
from schemas.view import Usage


def interaction(agent_id: str, n: int, body_bytes: int = 200) -> tuple[RequestEvent, ResponseEvent]:
    started = datetime.now(UTC)
    common = dict(
        interaction_id=str(uuid.uuid4()),
        started_at=started,
        profile_id="default",
        agent_id=agent_id,
        user_id=f"user-{n % 7}",
        provider="openai",
        model="gpt-4o",
    )
    request = RequestEvent(
        **common,
        route="/chat/completions",
        request_received='{"messages":[{"role":"user","content":"' + "x" * body_bytes + '"}]}',
    )
    response = ResponseEvent(
        **common,
        status=200,
        response_body='{"choices":[]}',
        usage=Usage(input_tokens=n, output_tokens=2 * n),
        finished_at=started + timedelta(milliseconds=5),
        latency_ms=5.0,
    )
    return request, response
