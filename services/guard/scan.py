"""``warden scan``: the guard's detectors over JSON lines, for back-testing and for analysts.

Each input line is one of:
- ``{"text": "..."}`` (optionally ``"location"``): a raw text;
- an interaction as ``GET /api/interactions/{id}`` returns it (``request_received`` / ``response_body``);
- a request or response event as carried on ``llm.requests`` / ``llm.responses``.
Each finding is printed as one JSON line with the input's line number (and interaction id when there is one).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.events import RequestEvent, ResponseEvent
from schemas.profiles import DEFAULT_PROFILE_ID, Profile, default_profile
from services.guard.detectors import scan_text
from services.guard.findings import Finding
from services.guard.scoring import findings_for


def _events_of_interaction(item: dict[str, Any]) -> list[RequestEvent | ResponseEvent]:
    common = {
        "interaction_id": str(item.get("interaction_id") or "00000000-0000-0000-0000-000000000000"),
        "started_at": datetime.now(UTC),
        "profile_id": str(item.get("profile_id") or DEFAULT_PROFILE_ID),
        "agent_id": str(item.get("agent_id") or ""),
        "user_id": str(item.get("user_id") or ""),
        "provider": str(item.get("provider") or "openai"),
        "model": str(item.get("model") or ""),
    }
    route = str(item.get("route") or "/chat/completions")
    events: list[RequestEvent | ResponseEvent] = [
        RequestEvent(
            **common,
            route=route,
            request_received=item.get("request_received") or "",
            request_sent=item.get("request_sent"),
        )
    ]
    if item.get("response_body"):
        events.append(
            ResponseEvent(
                **common,
                route=route,
                status=int(item.get("status") or 200),
                response_body=item["response_body"],
                finished_at=datetime.now(UTC),
                latency_ms=0.0,
            )
        )
    return events


def scan_line(line: dict[str, Any], profile: Profile) -> tuple[str | None, list[Finding]]:
    if "text" in line and isinstance(line["text"], str):
        return None, scan_text(line["text"], str(line.get("location") or "text"))
    if line.get("type") == "request":
        event: RequestEvent | ResponseEvent = RequestEvent.model_validate(line)
        return event.interaction_id, findings_for(event, profile)
    if line.get("type") == "response":
        event = ResponseEvent.model_validate(line)
        return event.interaction_id, findings_for(event, profile)
    found: list[Finding] = []
    events = _events_of_interaction(line)
    for event in events:
        found += findings_for(event, profile)
    return events[0].interaction_id, found


def scan_lines(lines: Iterable[str], profile: Profile | None = None) -> Iterator[dict[str, Any]]:
    profile = profile or default_profile()
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            parsed = orjson.loads(raw)
            if not isinstance(parsed, dict):
                raise ValueError("each line must be a JSON object")
            interaction_id, findings = scan_line(parsed, profile)
        except Exception as exc:
            yield {"line": number, "error": str(exc)[:500]}
            continue
        for finding in findings:
            out: dict[str, Any] = {"line": number, **finding.model_dump()}
            if interaction_id:
                out["interaction_id"] = interaction_id
            yield out
