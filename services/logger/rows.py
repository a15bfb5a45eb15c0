"""Events → ``warden.interactions`` / ``warden.violations`` rows. Pure functions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.events import SEVERITY_RANK, RequestEvent, ResponseEvent, ViolationEvent
from schemas.folding import fold_by_interaction

Row = dict[str, Any]


def ch_time(value: datetime) -> str:
    """ClickHouse DateTime64 text, in UTC (events carry aware UTC datetimes). isoformat is C code, several times
    faster than strftime, and ClickHouse reads its output whether or not it has a fraction."""
    if value.utcoffset():  # an event written with another offset: the column is UTC
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(sep=" ")


def _json(models: list[Any]) -> str | None:
    return orjson.dumps([m.model_dump(mode="json") for m in models]).decode() if models else None


def _key(event: RequestEvent | ResponseEvent) -> Row:
    return {
        "interaction_id": event.interaction_id,
        "started_at": ch_time(event.started_at),
        "agent_id": event.agent_id,
        "user_id": event.user_id,
        "session_id": event.session_id,
        "profile_id": event.profile_id,
        "provider": event.provider,
        "model": event.model,
    }


def request_row(event: RequestEvent) -> Row:
    row = _key(event)
    row.update(
        route=event.route,
        stream=int(event.stream),
        request_received=event.request_received,
        request_sent=event.request_sent,
        request_decisions=_json(event.decisions),
        untrusted_since=event.untrusted_since,
        blocked=int(any(d.enforced and d.kind.endswith("blocked") for d in event.decisions)),
    )
    return row


def response_row(event: ResponseEvent) -> Row:
    row = _key(event)
    row.update(
        status=event.status,
        finished_at=ch_time(event.finished_at),
        latency_ms=event.latency_ms,
        ttft_ms=event.ttft_ms,
        input_tokens=event.usage.input_tokens,
        output_tokens=event.usage.output_tokens,
        cached_tokens=event.usage.cached_tokens,
        finish_reason=event.finish_reason,
        response_body=event.response_body,
        tool_calls=_json(event.tool_calls),
        blocked_tool_calls=_json(event.blocked_tool_calls),
        response_decisions=_json(event.decisions),
        blocked=int(bool(event.blocked_tool_calls)),
        error=event.error,
        aborted=int(event.aborted),
    )
    return row


def interaction_rows(events: list[RequestEvent | ResponseEvent]) -> list[Row]:
    """One row per interaction in the batch: a request and its response in the same batch become one row, which is
    what the table would fold them into anyway, with half the rows to write and merge."""
    return fold_by_interaction(
        request_row(event) if isinstance(event, RequestEvent) else response_row(event) for event in events
    )


def violation_row(event: ViolationEvent) -> Row:
    return {
        "violation_id": event.violation_id,
        "interaction_id": event.interaction_id,
        "detected_at": ch_time(event.detected_at),
        "detector": event.detector,
        "category": event.category,
        "severity": event.severity,
        "severity_rank": SEVERITY_RANK[event.severity],
        "score": event.score,
        "action": event.action,
        "location": event.evidence.location,
        "excerpt": event.evidence.excerpt,
        "profile_id": event.profile_id,
        "agent_id": event.agent_id,
        "user_id": event.user_id,
    }
