"""The columns of ``warden.interactions`` and ``warden.violations``: the one place a column is declared.

Each column names its ClickHouse type exactly as ``system.columns`` spells it (``tests/logger/test_columns.py`` holds
the tables below to the ones the migrations create) and says how each event fills it: which field of the event's
document, read by which reader. A reader takes a value in the form the producers write it (``model_dump_json``: every
field present, RFC 3339 UTC times), or as a validated model holds it, and returns what the column stores; it raises
``Unusual`` for anything else, and the caller then reads the event through its model (``rows.py``). Readers also
refuse what ClickHouse would refuse (an interaction id that is not a UUID, a count its unsigned type cannot hold): one
such row would fail its whole batch, again on every retry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import orjson

from schemas.events import INTERACTION_ID, SEVERITY_RANK, Category, PolicyDecision, UpstreamAttempt, ViolationEvent

Doc = dict[str, Any]
Half = Literal["request", "response", "violation"]
"""Which event a row comes from: an interaction's request or response half, or a violation."""

CANONICAL_UUID = INTERACTION_ID.fullmatch
_fromisoformat = datetime.fromisoformat


class Unusual(Exception):
    """A value not in the form the producers write (the message says what is wrong with it, for a column whose
    value the models accept but ClickHouse would refuse)."""


Read = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Source:
    """How an event fills a column: ``read(doc[field])`` (``doc["usage"]["input_tokens"]`` for ``usage.input_tokens``),
    or ``read(doc)`` when ``field`` is None (a value derived from several fields)."""

    field: str | None
    read: Read


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str
    """The ClickHouse type as ``system.columns`` spells it."""
    fills: dict[Half, Source]
    """The events that fill the column; the other events leave it out of their rows (NULL, or folded from the other
    half)."""


# -- readers ---------------------------------------------------------------------------------------------------------


def uuid(value: Any) -> str:
    """The canonical spelling only (lowercase, hyphenated): the model path writes any other as that."""
    if type(value) is not str or CANONICAL_UUID(value) is None:
        raise Unusual(f"is not a UUID: {str(value)[:64]!r}")
    return value


def utc_time(value: Any) -> str:
    """DateTime64 text in UTC, from ``2026-01-31T12:00:00[.123456]Z`` (a payload: the separators pin the layout and
    ``fromisoformat`` checks the rest, several times cheaper than a regular expression) or from a datetime (a model;
    one without a zone is taken as UTC)."""
    if type(value) is not str:
        if not isinstance(value, datetime):
            raise Unusual("is not a time")
        if value.utcoffset():
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None).isoformat(sep=" ")
    if (
        value[-1:] != "Z"
        or not (len(value) == 20 or (len(value) == 27 and value[19] == "."))
        or value[4] != "-"
        or value[7] != "-"
        or value[10] != "T"
        or value[13] != ":"
        or value[16] != ":"
    ):
        raise Unusual("is not an RFC 3339 UTC time")
    try:
        _fromisoformat(value)
    except ValueError:
        raise Unusual("is not a date") from None
    return value[:10] + " " + value[11:-1]


def text(value: Any) -> str:
    if type(value) is not str:
        raise Unusual("is not a string")
    return value


def optional_text(value: Any) -> str | None:
    if value is not None and type(value) is not str:
        raise Unusual("is not a string")
    return value


def flag(value: Any) -> int:
    """A bool as UInt8."""
    if type(value) is not bool:
        raise Unusual("is not a boolean")
    return int(value)


def unsigned(bits: int, *, optional: bool = False) -> Read:
    """An integer the column's unsigned type holds (a bool is not an integer here)."""
    end = 1 << bits

    def read(value: Any) -> int | None:
        if value is None and optional:
            return None
        if type(value) is not int or not 0 <= value < end:
            raise Unusual(f"out of range: {value!r}")
        return value

    return read


def number(value: Any) -> float:
    if type(value) is not float and type(value) is not int:
        raise Unusual("is not a number")
    return float(value)


def optional_number(value: Any) -> float | None:
    return None if value is None else number(value)


def one_of(values: frozenset[str]) -> Read:
    """A string the model's ``Literal`` allows."""

    def read(value: Any) -> str:
        if type(value) is not str or value not in values:
            raise Unusual(f"is not one of {sorted(values)}")
        return value

    return read


def score(value: Any) -> float:
    if not 0 <= number(value) <= 1:
        raise Unusual(f"out of range: {value!r}")
    return float(value)


_DECISION_KINDS = frozenset(get_args(PolicyDecision.model_fields["kind"].annotation))


def _decisions(value: Any) -> list[Doc]:
    """The decisions in the model's field order, so the column's JSON is the same whichever path built it."""
    if type(value) is not list:
        raise Unusual("is not a list")
    out = []
    for d in value:
        kind, tool, call, reason, enforced = d["kind"], d["tool"], d["tool_call_id"], d["reason"], d["enforced"]
        if type(kind) is not str or kind not in _DECISION_KINDS:
            raise Unusual("holds an unknown decision")
        optional_text(tool), optional_text(call), text(reason), flag(enforced)
        out.append({"kind": kind, "tool": tool, "tool_call_id": call, "reason": reason, "enforced": enforced})
    return out


def decisions(value: Any) -> str | None:
    """The decisions as JSON, None when there are none (most events: that case first)."""
    if type(value) is list and not value:
        return None
    return orjson.dumps(_decisions(value)).decode()


def enforced_block(doc: Doc) -> int:
    """1 when an enforced decision blocked something."""
    value = doc["decisions"]
    if type(value) is list and not value:
        return 0
    return int(any(d["enforced"] and d["kind"].endswith("blocked") for d in _decisions(value)))


def tool_calls(value: Any) -> str | None:
    """The tool calls as JSON in the model's field order, None when there are none."""
    if type(value) is not list:
        raise Unusual("is not a list")
    if not value:
        return None
    out = []
    for call in value:
        out.append({"id": text(call["id"]), "name": text(call["name"]), "arguments": call["arguments"]})
    return orjson.dumps(out).decode()


_ATTEMPT_FIELDS = tuple(UpstreamAttempt.model_fields)


def upstream_attempts(value: Any) -> str | None:
    """The upstream attempts as JSON in the model's field order, None when there are none (most events)."""
    if type(value) is not list:
        raise Unusual("is not a list")
    if not value:
        return None
    out = []
    for attempt in value:
        if type(attempt) is not dict:
            raise Unusual("holds an attempt that is not an object")
        row = {name: attempt.get(name) for name in _ATTEMPT_FIELDS}
        text(row["span_id"]), text(row["deployment"]), text(row["model"]), flag(row["answered"])
        number(row["started_ms"]), number(row["finished_ms"]), optional_number(row["latency_ms"])
        optional_text(row["error"]), optional_text(row["error_class"])
        status = row["status"]
        if status is not None and (type(status) is not int or not 0 <= status < 1 << 16):
            raise Unusual(f"holds a status out of range: {status!r}")
        out.append(row)
    return orjson.dumps(out).decode()


def any_blocked_call(doc: Doc) -> int:
    """1 when a tool call was blocked."""
    return int(tool_calls(doc["blocked_tool_calls"]) is not None)


def severity_rank(doc: Doc) -> int:
    severity = doc["severity"]
    if type(severity) is not str or severity not in SEVERITY_RANK:
        raise Unusual("is not a severity")
    return SEVERITY_RANK[severity]


# -- the tables ------------------------------------------------------------------------------------------------------

_ANY, _LAST = "SimpleAggregateFunction(any, {})", "SimpleAggregateFunction(anyLast, Nullable({}))"
_count32 = unsigned(32, optional=True)


def _both(field: str, read: Read) -> dict[Half, Source]:
    return {"request": Source(field, read), "response": Source(field, read)}


def _request(field: str | None, read: Read) -> dict[Half, Source]:
    return {"request": Source(field, read)}


def _response(field: str | None, read: Read) -> dict[Half, Source]:
    return {"response": Source(field, read)}


INTERACTIONS: tuple[Column, ...] = (
    # Attribution: the same in both events.
    Column("interaction_id", "UUID", _both("interaction_id", uuid)),
    Column("started_at", "DateTime64(6, 'UTC')", _both("started_at", utc_time)),
    Column("agent_id", "String", _both("agent_id", text)),
    Column("user_id", _ANY.format("String"), _both("user_id", text)),
    Column("session_id", _ANY.format("String"), _both("session_id", text)),
    Column("profile_id", _ANY.format("LowCardinality(String)"), _both("profile_id", text)),
    Column("provider", _ANY.format("LowCardinality(String)"), _both("provider", text)),
    Column("model", _ANY.format("LowCardinality(String)"), _both("model", text)),
    # The request half.
    Column("route", _LAST.format("String"), _request("route", text)),
    Column("stream", _LAST.format("UInt8"), _request("stream", flag)),
    Column("request_received", _LAST.format("String"), _request("request_received", text)),
    Column("request_sent", _LAST.format("String"), _request("request_sent", optional_text)),
    Column("request_decisions", _LAST.format("String"), _request("decisions", decisions)),
    Column("untrusted_since", _LAST.format("String"), _request("untrusted_since", optional_text)),
    # The response half.
    Column("status", _LAST.format("UInt16"), _response("status", unsigned(16))),
    Column("finished_at", _LAST.format("DateTime64(6, 'UTC')"), _response("finished_at", utc_time)),
    Column("latency_ms", _LAST.format("Float64"), _response("latency_ms", number)),
    Column("ttft_ms", _LAST.format("Float64"), _response("ttft_ms", optional_number)),
    Column("input_tokens", _LAST.format("UInt32"), _response("usage.input_tokens", _count32)),
    Column("output_tokens", _LAST.format("UInt32"), _response("usage.output_tokens", _count32)),
    Column("cached_tokens", _LAST.format("UInt32"), _response("usage.cached_tokens", _count32)),
    Column("finish_reason", _LAST.format("String"), _response("finish_reason", optional_text)),
    Column("response_body", _LAST.format("String"), _response("response_body", text)),
    Column("tool_calls", _LAST.format("String"), _response("tool_calls", tool_calls)),
    Column("blocked_tool_calls", _LAST.format("String"), _response("blocked_tool_calls", tool_calls)),
    Column("response_decisions", _LAST.format("String"), _response("decisions", decisions)),
    # Either half may block; the table keeps the max.
    Column(
        "blocked",
        "SimpleAggregateFunction(max, UInt8)",
        {"request": Source(None, enforced_block), "response": Source(None, any_blocked_call)},
    ),
    Column("error", _LAST.format("String"), _response("error", optional_text)),
    Column("aborted", _LAST.format("UInt8"), _response("aborted", flag)),
    # How the request authenticated, and the prefix of the Warden key it used (migration 005).
    Column("auth", _ANY.format("LowCardinality(String)"), _both("auth", text)),
    Column("key_prefix", _ANY.format("String"), _both("key_prefix", text)),
    # Spend: the counts priced apart, and what the ingress worked out the answer cost (NULL: unknown).
    Column("cache_write_tokens", _LAST.format("UInt32"), _response("usage.cache_write_tokens", _count32)),
    Column("reasoning_tokens", _LAST.format("UInt32"), _response("usage.reasoning_tokens", _count32)),
    Column("cost_usd", _LAST.format("Float64"), _response("cost.usd", optional_number)),
    Column("cost_input_usd", _LAST.format("Float64"), _response("cost.input_usd", optional_number)),
    Column("cost_cached_usd", _LAST.format("Float64"), _response("cost.cached_usd", optional_number)),
    Column("cost_cache_write_usd", _LAST.format("Float64"), _response("cost.cache_write_usd", optional_number)),
    Column("cost_output_usd", _LAST.format("Float64"), _response("cost.output_usd", optional_number)),
    Column("cost_reasoning_usd", _LAST.format("Float64"), _response("cost.reasoning_usd", optional_number)),
    Column("cost_estimated", _LAST.format("UInt8"), _response("cost.estimated", flag)),
    Column("cost_note", _LAST.format("String"), _response("cost.note", optional_text)),
    # Every request sent upstream: a routed request's retries and fallbacks (migration 008).
    Column("upstream_attempts", _LAST.format("String"), _response("upstream_attempts", upstream_attempts)),
)


def _violation(field: str | None, read: Read) -> dict[Half, Source]:
    return {"violation": Source(field, read)}


VIOLATIONS: tuple[Column, ...] = (
    Column("violation_id", "String", _violation("violation_id", text)),
    Column("interaction_id", "UUID", _violation("interaction_id", uuid)),
    Column("detected_at", "DateTime64(6, 'UTC')", _violation("detected_at", utc_time)),
    Column("detector", "LowCardinality(String)", _violation("detector", text)),
    Column("category", "LowCardinality(String)", _violation("category", one_of(frozenset(get_args(Category))))),
    Column("severity", "LowCardinality(String)", _violation("severity", one_of(frozenset(SEVERITY_RANK)))),
    Column("severity_rank", "UInt8", _violation(None, severity_rank)),
    Column("score", "Float32", _violation("score", score)),
    Column(
        "action",
        "LowCardinality(String)",
        _violation("action", one_of(frozenset(get_args(ViolationEvent.model_fields["action"].annotation)))),
    ),
    Column("location", "String", _violation("evidence.location", text)),
    Column("excerpt", "String", _violation("evidence.excerpt", text)),
    Column("profile_id", "LowCardinality(String)", _violation("profile_id", text)),
    Column("agent_id", "String", _violation("agent_id", text)),
    Column("user_id", "String", _violation("user_id", text)),
)

TABLES: dict[str, tuple[Column, ...]] = {"warden.interactions": INTERACTIONS, "warden.violations": VIOLATIONS}
