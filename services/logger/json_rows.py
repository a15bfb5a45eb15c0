"""Event JSON → ``warden.interactions`` / ``warden.violations`` rows, straight from the decoded documents.

The logger's fast path. Building the pydantic models was the largest part of the logger's work per event, and it
needs none of them. Each builder here checks the fields its row needs, in the exact form the producers
write them (what ``model_dump_json`` emits: every field present, RFC 3339 UTC times), and returns None for anything
else. The caller then takes the model path (``rows.py``), which accepts every form the models accept and says why an
event is invalid. Both paths must give the same rows: ``tests/logger/test_json_rows.py`` holds them to it.

Beyond what the models check, a row must be storable: an interaction id that is not a UUID or a negative count would
make ClickHouse refuse the whole batch, again on every retry. ``unstorable`` says why a row from the model path is
not; the builders here decline such documents themselves.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, get_args

import orjson

from schemas.events import INTERACTION_ID, SEVERITY_RANK, Category, PolicyDecision, ViolationEvent

Row = dict[str, Any]
Doc = dict[str, Any]

_UUID = INTERACTION_ID.fullmatch
_DECISION_KINDS = frozenset(get_args(PolicyDecision.model_fields["kind"].annotation))
_CATEGORIES = frozenset(get_args(Category))
_ACTIONS = frozenset(get_args(ViolationEvent.model_fields["action"].annotation))
UINT16_END = 1 << 16
UINT32_END = 1 << 32
_fromisoformat = datetime.fromisoformat


class _Unusual(Exception):
    """A document not in the form the producers write: the caller takes the model path."""


def _time(value: Any) -> str:
    """``2026-01-31T12:00:00[.123456]Z`` → ``2026-01-31 12:00:00[.123456]``, the text ``rows.ch_time`` gives for the
    same instant. The separators pin the layout and ``fromisoformat`` checks the rest (ASCII digits, no 31 February):
    several times cheaper than a regular expression."""
    if (
        type(value) is not str
        or value[-1:] != "Z"
        or not (len(value) == 20 or (len(value) == 27 and value[19] == "."))
        or value[4] != "-"
        or value[7] != "-"
        or value[10] != "T"
        or value[13] != ":"
        or value[16] != ":"
    ):
        raise _Unusual
    try:
        _fromisoformat(value)
    except ValueError:
        raise _Unusual from None
    return value[:10] + " " + value[11:-1]


def _opt_str(value: Any) -> bool:
    return value is None or type(value) is str


def _count(value: Any, end: int) -> bool:
    """None or an integer the column's unsigned type holds (a bool is not an integer here)."""
    return value is None or (type(value) is int and 0 <= value < end)


def _number(value: Any) -> bool:
    return type(value) is float or type(value) is int


def _key(doc: Doc) -> Row:
    interaction_id, started_at = doc["interaction_id"], _time(doc["started_at"])
    profile_id, agent_id, user_id = doc["profile_id"], doc["agent_id"], doc["user_id"]
    session_id, provider, model = doc["session_id"], doc["provider"], doc["model"]
    if (
        type(interaction_id) is not str
        or _UUID(interaction_id) is None
        or type(profile_id) is not str
        or type(agent_id) is not str
        or type(user_id) is not str
        or type(session_id) is not str
        or type(provider) is not str
        or type(model) is not str
    ):
        raise _Unusual
    return {
        "interaction_id": interaction_id,
        "started_at": started_at,
        "agent_id": agent_id,
        "user_id": user_id,
        "session_id": session_id,
        "profile_id": profile_id,
        "provider": provider,
        "model": model,
    }


def _decisions(value: Any) -> tuple[str | None, bool]:
    """The column's JSON and whether an enforced decision blocked. The JSON is rebuilt in the model's field order, so
    it is the text ``rows.py`` writes."""
    if type(value) is not list:
        raise _Unusual
    if not value:
        return None, False
    out, blocked = [], False
    for d in value:
        kind, tool, call, reason, enforced = d["kind"], d["tool"], d["tool_call_id"], d["reason"], d["enforced"]
        if type(kind) is not str or kind not in _DECISION_KINDS or not _opt_str(tool) or not _opt_str(call):
            raise _Unusual
        if type(reason) is not str or type(enforced) is not bool:
            raise _Unusual
        out.append({"kind": kind, "tool": tool, "tool_call_id": call, "reason": reason, "enforced": enforced})
        blocked = blocked or (enforced and kind.endswith("blocked"))
    return orjson.dumps(out).decode(), blocked


def _tool_calls(value: Any) -> str | None:
    """The column's JSON, rebuilt in the model's field order."""
    if type(value) is not list:
        raise _Unusual
    if not value:
        return None
    out = []
    for call in value:
        call_id, name = call["id"], call["name"]
        if type(call_id) is not str or type(name) is not str:
            raise _Unusual
        out.append({"id": call_id, "name": name, "arguments": call["arguments"]})
    return orjson.dumps(out).decode()


def request_row(doc: Doc) -> Row | None:
    """The row of a ``RequestEvent`` document, as ``rows.request_row`` builds it; None when not in the usual form."""
    try:
        if doc["type"] != "request":
            return None
        row = _key(doc)
        route, stream, received = doc["route"], doc["stream"], doc["request_received"]
        sent, untrusted = doc["request_sent"], doc["untrusted_since"]
        decisions = _decisions(doc["decisions"])
    except (KeyError, TypeError, _Unusual):
        return None
    if (
        type(route) is not str
        or type(stream) is not bool
        or type(received) is not str
        or not _opt_str(sent)
        or not _opt_str(untrusted)
    ):
        return None
    row["route"] = route
    row["stream"] = int(stream)
    row["request_received"] = received
    row["request_sent"] = sent
    row["request_decisions"] = decisions[0]
    row["untrusted_since"] = untrusted
    row["blocked"] = int(decisions[1])
    return row


def response_row(doc: Doc) -> Row | None:
    """The row of a ``ResponseEvent`` document, as ``rows.response_row`` builds it; None when not in the usual form."""
    try:
        if doc["type"] != "response":
            return None
        row = _key(doc)
        status, finished_at, latency, ttft = doc["status"], _time(doc["finished_at"]), doc["latency_ms"], doc["ttft_ms"]
        usage = doc["usage"]
        tokens_in, tokens_out, tokens_cached = usage["input_tokens"], usage["output_tokens"], usage["cached_tokens"]
        finish_reason, body, error, aborted = doc["finish_reason"], doc["response_body"], doc["error"], doc["aborted"]
        tool_calls, blocked_calls = _tool_calls(doc["tool_calls"]), _tool_calls(doc["blocked_tool_calls"])
        decisions = _decisions(doc["decisions"])
    except (KeyError, TypeError, _Unusual):
        return None
    if (
        type(status) is not int
        or not 0 <= status < UINT16_END
        or not _number(latency)
        or not (ttft is None or _number(ttft))
        or not _count(tokens_in, UINT32_END)
        or not _count(tokens_out, UINT32_END)
        or not _count(tokens_cached, UINT32_END)
        or not _opt_str(finish_reason)
        or type(body) is not str
        or not _opt_str(error)
        or type(aborted) is not bool
    ):
        return None
    row["status"] = status
    row["finished_at"] = finished_at
    row["latency_ms"] = float(latency)
    row["ttft_ms"] = None if ttft is None else float(ttft)
    row["input_tokens"] = tokens_in
    row["output_tokens"] = tokens_out
    row["cached_tokens"] = tokens_cached
    row["finish_reason"] = finish_reason
    row["response_body"] = body
    row["tool_calls"] = tool_calls
    row["blocked_tool_calls"] = blocked_calls
    row["response_decisions"] = decisions[0]
    row["blocked"] = int(blocked_calls is not None)
    row["error"] = error
    row["aborted"] = int(aborted)
    return row


def violation_row(doc: Doc) -> Row | None:
    """The row of a ``ViolationEvent`` document, as ``rows.violation_row`` builds it; None when not in the usual
    form."""
    try:
        if doc["type"] != "violation":
            return None
        violation_id, interaction_id, detected_at = (
            doc["violation_id"],
            doc["interaction_id"],
            _time(doc["detected_at"]),
        )
        detector, category, severity, score = doc["detector"], doc["category"], doc["severity"], doc["score"]
        action, evidence = doc["action"], doc["evidence"]
        location, excerpt = evidence["location"], evidence["excerpt"]
        profile_id, agent_id, user_id = doc["profile_id"], doc["agent_id"], doc["user_id"]
    except (KeyError, TypeError, _Unusual):
        return None
    if (
        type(violation_id) is not str
        or type(interaction_id) is not str
        or _UUID(interaction_id) is None
        or type(detector) is not str
        or type(category) is not str
        or category not in _CATEGORIES
        or type(severity) is not str
        or severity not in SEVERITY_RANK
        or not _number(score)
        or not 0 <= score <= 1
        or type(action) is not str
        or action not in _ACTIONS
        or type(location) is not str
        or type(excerpt) is not str
        or type(profile_id) is not str
        or type(agent_id) is not str
        or type(user_id) is not str
    ):
        return None
    return {
        "violation_id": violation_id,
        "interaction_id": interaction_id,
        "detected_at": detected_at,
        "detector": detector,
        "category": category,
        "severity": severity,
        "severity_rank": SEVERITY_RANK[severity],
        "score": float(score),
        "action": action,
        "location": location,
        "excerpt": excerpt,
        "profile_id": profile_id,
        "agent_id": agent_id,
        "user_id": user_id,
    }


def unstorable(row: Row) -> str | None:
    """Why ClickHouse would refuse a row the models accepted, or None."""
    interaction_id = row.get("interaction_id")
    if not isinstance(interaction_id, str) or _UUID(interaction_id) is None:
        return f"interaction_id is not a UUID: {str(interaction_id)[:64]!r}"
    for column, end in (
        ("status", UINT16_END),
        ("input_tokens", UINT32_END),
        ("output_tokens", UINT32_END),
        ("cached_tokens", UINT32_END),
    ):
        if not _count(row.get(column), end):
            return f"{column} out of range: {row[column]!r}"
    return None
