"""Unique attribution for each test, so tests sharing one Warden find their own interactions."""

from __future__ import annotations

import uuid


def new_agent(prefix: str = "agent") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def attribution(agent_id: str, user_id: str | None = None, session_id: str | None = None) -> dict[str, str]:
    headers = {"X-Archestra-Agent-Id": agent_id}
    if user_id:
        headers["X-Archestra-User-Id"] = user_id
    if session_id:
        headers["X-Archestra-Session-Id"] = session_id
    return headers
