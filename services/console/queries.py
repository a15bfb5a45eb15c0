"""The read side's SQL: interaction lists with filters and keyset pagination, and single interactions.

Pure functions building ``{name:Type}``-parameterised SQL, so the same text runs on chDB and on a ClickHouse server.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

MAX_LIMIT = 500
_SUMMARY_COLUMNS = """
    interaction_id, started_at, agent_id, user_id, session_id, profile_id, provider,
    model, route, stream, status, finished_at, latency_ms, ttft_ms, input_tokens, output_tokens, cached_tokens,
    finish_reason, blocked, error, aborted, untrusted_since"""
_DETAIL_COLUMNS = (
    _SUMMARY_COLUMNS
    + """,
    request_received, request_sent, request_decisions, response_body, tool_calls, blocked_tool_calls,
    response_decisions"""
)
_STATUS_CLASS = re.compile(r"^([1-5])xx$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
SEVERITIES = {"low": 1, "medium": 2, "high": 3, "critical": 4}
CATEGORIES = {"prompt_injection", "secret", "pii", "exfiltration", "policy"}


class InvalidQuery(ValueError):
    pass


@dataclass(slots=True)
class InteractionFilter:
    agent_id: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    profile_id: str | None = None
    provider: str | None = None
    model: str | None = None
    status: str | None = None
    """An exact code (``200``), a class (``4xx``), ``error`` (>= 400 or failed) or ``in_flight``."""
    blocked: bool | None = None
    violation_category: str | None = None
    min_severity: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 50
    cursor: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def encode_cursor(started_at: str, interaction_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([started_at, interaction_id])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        started_at, interaction_id = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except Exception as exc:
        raise InvalidQuery("cursor is not one this API returned") from exc
    if not isinstance(started_at, str) or not isinstance(interaction_id, str) or not _UUID.match(interaction_id):
        raise InvalidQuery("cursor is not one this API returned")
    return started_at, interaction_id


def list_interactions(f: InteractionFilter) -> tuple[str, dict[str, Any]]:
    """SQL for one page, newest first; it asks for one row more than the page to know whether another follows."""
    if not 1 <= f.limit <= MAX_LIMIT:
        raise InvalidQuery(f"limit must be between 1 and {MAX_LIMIT}")
    where: list[str] = []
    params: dict[str, Any] = {"limit": f.limit + 1}
    for column in ("agent_id", "user_id", "session_id", "profile_id", "provider", "model"):
        value = getattr(f, column)
        if value is not None:
            where.append(f"{column} = {{{column}:String}}")
            params[column] = value
    if f.since is not None:
        where.append("started_at >= {since:DateTime64(6, 'UTC')}")
        params["since"] = f.since.strftime("%Y-%m-%d %H:%M:%S.%f")
    if f.until is not None:
        where.append("started_at < {until:DateTime64(6, 'UTC')}")
        params["until"] = f.until.strftime("%Y-%m-%d %H:%M:%S.%f")
    if f.cursor:
        started_at, interaction_id = decode_cursor(f.cursor)
        where.append("(started_at, interaction_id) < ({c_ts:DateTime64(6, 'UTC')}, {c_id:UUID})")
        params["c_ts"], params["c_id"] = started_at, interaction_id
    having = _status_condition(f.status)
    if f.blocked is not None:
        having.append("blocked = 1" if f.blocked else "blocked = 0")
    if f.violation_category is not None or f.min_severity is not None:
        where.append(_violation_condition(f, params))
    sql = f"SELECT {_SUMMARY_COLUMNS} FROM warden.interactions FINAL"
    if where or having:
        sql += " WHERE " + " AND ".join(where + having)
    sql += " ORDER BY started_at DESC, interaction_id DESC LIMIT {limit:UInt32}"
    return sql, params


def _status_condition(status: str | None) -> list[str]:
    if status is None:
        return []
    if status == "in_flight":
        return ["status IS NULL"]
    if status == "error":
        return ["(status >= 400 OR error IS NOT NULL)"]
    match = _STATUS_CLASS.match(status)
    if match:
        low = int(match.group(1)) * 100
        return [f"status >= {low} AND status < {low + 100}"]
    if status.isdigit() and 100 <= int(status) <= 599:
        return [f"status = {int(status)}"]
    raise InvalidQuery("status must be a code (200), a class (4xx), 'error' or 'in_flight'")


def _violation_condition(f: InteractionFilter, params: dict[str, Any]) -> str:
    inner = []
    if f.violation_category is not None:
        if f.violation_category not in CATEGORIES:
            raise InvalidQuery(f"violation_category must be one of {sorted(CATEGORIES)}")
        inner.append("category = {v_category:String}")
        params["v_category"] = f.violation_category
    if f.min_severity is not None:
        if f.min_severity not in SEVERITIES:
            raise InvalidQuery(f"min_severity must be one of {list(SEVERITIES)}")
        inner.append("severity_rank >= {v_rank:UInt8}")
        params["v_rank"] = SEVERITIES[f.min_severity]
    return "interaction_id IN (SELECT interaction_id FROM warden.violations WHERE " + " AND ".join(inner) + ")"


def get_interaction(interaction_id: str) -> tuple[str, dict[str, Any]]:
    if not _UUID.match(interaction_id):
        raise InvalidQuery("not an interaction id")
    sql = f"SELECT {_DETAIL_COLUMNS} FROM warden.interactions FINAL WHERE interaction_id = {{id:UUID}} LIMIT 1"
    return sql, {"id": interaction_id}


def violations_of(interaction_id: str) -> tuple[str, dict[str, Any]]:
    sql = (
        "SELECT violation_id, detected_at, detector, category, severity, score, action, location, excerpt "
        "FROM warden.violations FINAL WHERE interaction_id = {id:UUID} ORDER BY severity_rank DESC, detected_at"
    )
    return sql, {"id": interaction_id}


_JSON_COLUMNS = ("request_decisions", "tool_calls", "blocked_tool_calls", "response_decisions")


def present(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row as the API shows it: booleans as booleans, JSON columns decoded, in-flight made explicit."""
    out = dict(row)
    for column in ("stream", "blocked", "aborted"):
        if column in out and out[column] is not None:
            out[column] = bool(out[column])
    for column in _JSON_COLUMNS:
        if column in out:
            out[column] = orjson.loads(out[column]) if out[column] else []
    out["in_flight"] = out.get("status") is None
    out["usage"] = {
        "input_tokens": out.pop("input_tokens", None),
        "output_tokens": out.pop("output_tokens", None),
        "cached_tokens": out.pop("cached_tokens", None),
    }
    return out
