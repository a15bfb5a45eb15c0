"""The rows the logger stores, read back from chDB: every column as the event says, for every wire format, streamed
and not, whichever way the event came (a Kafka payload, or the published model on the in-process bus); events in
other forms the models accept are stored as the models read them; what cannot be stored is dead-lettered with the
reason and the rest of the batch is stored."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

from plumbing.store.base import Store
from schemas import topics
from schemas.cost import Cost
from schemas.events import Evidence, PolicyDecision, RequestEvent, ResponseEvent, UpstreamAttempt, ViolationEvent
from schemas.view import ToolCall, Usage
from tests.support.store_runner import run_on_chdb

STARTED = datetime(2026, 3, 14, 15, 9, 26, 535897, tzinfo=UTC)
TOPIC = {"request": topics.REQUESTS, "response": topics.RESPONSES, "violation": topics.VIOLATIONS}

# Each wire format's route and bodies, as the ingress records them (request, answer, streamed answer).
WIRE_FORMATS = {
    "openai-chat": (
        "/chat/completions",
        '{"model":"gpt-4o","messages":[{"role":"user","content":"héllo ✓ \\u0000"}]}',
        '{"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}',
        'data: {"choices":[{"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n',
    ),
    "openai-responses": (
        "/responses",
        '{"model":"gpt-4o","input":"hi"}',
        '{"output":[{"type":"message","content":[{"type":"output_text","text":"hi"}]}]}',
        'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"hi"}\n\n',
    ),
    "anthropic-messages": (
        "/v1/messages",
        '{"model":"claude-sonnet-4","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}',
        '{"type":"message","role":"assistant","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn"}',
        'event: content_block_delta\ndata: {"type":"content_block_delta",'
        '"delta":{"type":"text_delta","text":"hi"}}\n\n',
    ),
    "gemini": (
        "/v1beta/models/gemini-2.0-flash:generateContent",
        '{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}',
        '{"candidates":[{"content":{"role":"model","parts":[{"text":"hi"}]},"finishReason":"STOP"}]}',
        'data: {"candidates":[{"content":{"parts":[{"text":"hi"}]}}]}\r\n\r\n',
    ),
}
BLOCKED = PolicyDecision(kind="tool_call_blocked", tool="send_email", tool_call_id="call_1", reason="untrusted context")
PERMISSIVE = PolicyDecision(kind="tool_call_blocked", tool="send_email", reason="would block", enforced=False)
REDACTION = PolicyDecision(kind="redaction", reason="secret masked")
UNTRUSTED = PolicyDecision(kind="tool_result_untrusted", tool="fetch_url", tool_call_id="call_0")
CALLS = [
    ToolCall(id="call_1", name="send_email", arguments={"to": "a@b.test", "cc": ["x", "y"], "n": 3, "ok": True}),
    ToolCall(id="call_2", name="raw", arguments="{not json"),
    ToolCall(id="call_3", name="none", arguments=None),
    ToolCall(id="call_4", name="nested", arguments={"a": {"b": [1.5, None, "é"]}}),
]
# What varies between interactions besides the wire format: (request fields, response fields).
VARIANTS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({}, {"usage": Usage(input_tokens=120, output_tokens=33, cached_tokens=64), "ttft_ms": 150.5}),
    (
        {"request_sent": '{"messages":[{"role":"user","content":"h***o"}]}', "decisions": [REDACTION, UNTRUSTED]},
        {"untrusted": None, "finish_reason": "tool_calls", "tool_calls": CALLS},
    ),
    ({"decisions": [BLOCKED]}, {"decisions": [BLOCKED], "tool_calls": CALLS[:1], "blocked_tool_calls": CALLS[:1]}),
    ({"decisions": [PERMISSIVE]}, {"decisions": [PERMISSIVE], "usage": Usage(output_tokens=4_000_000_000)}),
    ({"decisions": [PERMISSIVE, BLOCKED, REDACTION]}, {"status": 502, "error": "upstream unreachable: timeout"}),
    ({"agent_id": "", "user_id": "", "session_id": "", "model": ""}, {"aborted": True, "latency_ms": 0}),
    ({"started_at": STARTED.replace(microsecond=0)}, {"finished_at": STARTED + timedelta(microseconds=1)}),
    (
        {},
        {
            "usage": Usage(
                input_tokens=900, output_tokens=70, cached_tokens=300, cache_write_tokens=100, reasoning_tokens=40
            ),
            "cost": Cost(
                usd=0.0123,
                input_usd=0.005,
                cached_usd=0.001,
                cache_write_usd=0.0013,
                output_usd=0.003,
                reasoning_usd=0.002,
                note="genai-prices: gpt-4o",
            ),
        },
    ),
    (
        {},
        {
            "usage": Usage(input_tokens=5, output_tokens=2, estimated=True),
            "cost": Cost(estimated=True, note="no price"),
        },
    ),
    ({}, {"decisions": [BLOCKED], "tool_calls": CALLS[1:2], "blocked_tool_calls": CALLS[1:2]}),  # blocked late
    (
        {},
        {
            "upstream_attempts": [
                UpstreamAttempt(
                    started_ms=0.5,
                    finished_ms=3.25,
                    status=503,
                    error="the upstream answered 503",
                    deployment="east",
                    model="gpt-4o",
                    latency_ms=2.75,
                    error_class="status_5xx",
                ),
                UpstreamAttempt(
                    span_id="00f067aa0ba902b7",
                    started_ms=3.5,
                    finished_ms=9.0,
                    status=200,
                    deployment="west",
                    model="gpt-4o-2024-08-06",
                    latency_ms=5.5,
                    answered=True,
                ),
            ]
        },
    ),
]


def attribution(**overrides: Any) -> dict[str, Any]:
    return {
        "interaction_id": str(uuid.uuid4()),
        "started_at": STARTED,
        "profile_id": "support-bot",
        "agent_id": "agent-7",
        "user_id": "user-42",
        "session_id": "s-1",
        "provider": "openai",
        "model": "gpt-4o",
    } | overrides


def an_interaction(wire: str, stream: bool, variant: int) -> tuple[RequestEvent, ResponseEvent]:
    route, request_body, answer, streamed = WIRE_FORMATS[wire]
    asked, answered = VARIANTS[variant]
    answered = {k: v for k, v in answered.items() if k != "untrusted"}
    common = attribution(**{k: v for k, v in asked.items() if k in attribution()})
    request = RequestEvent(
        **common,
        route=route,
        stream=stream,
        request_received=request_body,
        untrusted_since="call_0" if "untrusted" in VARIANTS[variant][1] else None,
        **{k: v for k, v in asked.items() if k not in common},
    )
    response = ResponseEvent(
        **common,
        route=route,
        response_body=streamed if stream else answer,
        **(
            {"status": 200, "finished_at": common["started_at"] + timedelta(seconds=1), "latency_ms": 1000.25}
            | answered
        ),
    )
    return request, response


INTERACTIONS = [
    an_interaction(wire, stream, variant)
    for (wire, stream), variant in zip(
        itertools.product(WIRE_FORMATS, (False, True)), itertools.cycle(range(len(VARIANTS))), strict=False
    )
]
ALL_VARIANTS = [an_interaction("openai-chat", False, variant) for variant in range(len(VARIANTS))]
IN_FLIGHT, _ = an_interaction("anthropic-messages", True, 0)  # its response is still to come
_, ORPHAN = an_interaction("gemini", False, 1)  # its request is in another batch

VIOLATIONS = [
    ViolationEvent(
        violation_id=f"v-{category}-{severity}-{action}",
        interaction_id=str(uuid.uuid4()),
        detected_at=STARTED + timedelta(milliseconds=5),
        detector="detector-x",
        category=category,
        severity=severity,
        score=score,
        action=action,
        evidence=Evidence(location="request.messages[3].tool_result", excerpt="ignore all prev***"),
        profile_id="support-bot",
        agent_id="agent-7",
        user_id="user-42",
    )
    for (category, severity, action), score in zip(
        itertools.product(
            ("prompt_injection", "secret", "pii", "exfiltration", "policy"),
            ("low", "medium", "high", "critical"),
            ("logged", "blocked", "redacted"),
        ),
        itertools.cycle((0.0, 0.5, 1.0, 0.25)),
        strict=False,
    )
]


def payload(event: BaseModel, drop: tuple[str, ...] = (), **changes: Any) -> dict[str, Any]:
    """The event as its producer writes it, less some fields, with some changed."""
    return {k: v for k, v in orjson.loads(event.model_dump_json()).items() if k not in drop} | changes


def fresh(event: BaseModel) -> BaseModel:
    return event.model_copy(update={"interaction_id": str(uuid.uuid4())})


def unusual_but_valid() -> list[tuple[str, dict[str, Any]]]:
    """Events in forms the models accept and the producers do not write."""
    request, response = (fresh(e) for e in ALL_VARIANTS[0])
    chat = ALL_VARIANTS[0][1]
    return [
        # What the models fill in themselves, left out.
        ("request", payload(request, drop=("agent_id", "decisions", "request_sent", "schema_version", "type"))),
        ("response", payload(response, drop=("usage", "tool_calls", "aborted"))),
        # Times in other spellings: an explicit offset (another zone), a space, fewer fraction digits, no zone.
        ("request", payload(fresh(request), started_at="2026-03-14T17:09:26.5+02:00")),
        ("response", payload(fresh(chat), finished_at="2026-03-14 15:09:27Z", started_at="2026-03-14T15:09:26.1Z")),
        ("request", payload(fresh(request), started_at="2026-03-14T15:09:26")),
        # Numbers the models coerce; an interaction id in another spelling of a UUID.
        ("response", payload(fresh(chat), status="200")),
        ("response", payload(fresh(chat), status=200.0)),
        ("violation", payload(fresh(VIOLATIONS[0]), violation_id="v-coerced", score="0.25")),
        ("request", payload(request, interaction_id=str(uuid.uuid4()).upper())),
        ("request", payload(request, interaction_id=uuid.uuid4().hex)),
        # A decision without its defaults.
        ("request", payload(fresh(request), decisions=[{"kind": "tool_call_blocked", "tool": "x"}])),
    ]


RESPONSE = ALL_VARIANTS[0][1]
INVALID: list[tuple[str, bytes | dict[str, Any], str]] = [
    (topics.REQUESTS, b'{"interaction_id": "truncated', "invalid RequestEvent"),
    (topics.REQUESTS, b"[1, 2]", "invalid RequestEvent"),
    (topics.REQUESTS, b"", "invalid RequestEvent"),
    (topics.RESPONSES, payload(fresh(RESPONSE), drop=("status",)), "status: Field required"),
    (topics.RESPONSES, payload(fresh(RESPONSE), status="two hundred"), "status: Input should be a valid integer"),
    (topics.RESPONSES, payload(fresh(RESPONSE), finished_at="2026-02-30T10:00:00Z"), "finished_at"),
    (topics.REQUESTS, payload(fresh(RESPONSE)), "invalid RequestEvent"),  # a response on the requests topic
    (topics.VIOLATIONS, payload(VIOLATIONS[0], score=1.5), "score"),
    # Accepted by the models, refused by ClickHouse: dead-lettered rather than failing the batch for ever.
    (topics.REQUESTS, payload(ALL_VARIANTS[0][0], interaction_id="not-a-uuid"), "interaction_id is not a UUID"),
    (topics.RESPONSES, payload(fresh(RESPONSE), usage={"input_tokens": -1}), "input_tokens out of range"),
    (topics.RESPONSES, payload(fresh(RESPONSE), status=70000), "status out of range"),
    (topics.DEAD_LETTER, payload(ALL_VARIANTS[0][0]), "unexpected event on llm.dead-letter"),
    # Valid JSON and a valid event, but a tool-call argument no 64-bit column or encoder holds.
    (
        topics.RESPONSES,
        b'{"interaction_id": "%s", "started_at": "2026-03-14T15:09:26Z", "profile_id": "p", "provider": "openai", '
        b'"status": 200, "finished_at": "2026-03-14T15:09:27Z", "latency_ms": 1, '
        b'"tool_calls": [{"id": "c", "name": "n", "arguments": {"n": 123456789012345678901234567890}}]}'
        % str(uuid.uuid4()).encode(),
        "cannot store ResponseEvent",
    ),
]


async def store_and_read_back(store: Store, messages: list[list[Any]]) -> dict[str, Any]:
    """Runs in a chDB child: each ``[topic, key, payload, as_model]`` delivered to the logger in one batch, as Kafka
    delivers it (the payload's bytes) or as the in-process bus does (the published model); the tables read back."""
    from prometheus_client import CollectorRegistry

    from plumbing.bus.base import Delivery
    from plumbing.bus.dispatch import deliver
    from plumbing.bus.inprocess import InProcessBus
    from plumbing.store.migrations import migrate
    from schemas.events import TOPIC_MODELS
    from services.logger.service import LoggerService

    await migrate(store)
    logger = LoggerService(InProcessBus(), store, CollectorRegistry())
    letters: list[list[Any]] = []
    batch = [
        Delivery(topic, key, TOPIC_MODELS[topic].model_validate_json(text), None)
        if as_model
        else Delivery(topic, key, None, text.encode())
        for topic, key, text, as_model in messages
    ]
    await deliver(
        logger.subscription, batch, lambda topic, key, letter: letters.append([topic, key, letter.model_dump()])
    )
    return {
        "interactions": await store.select("SELECT * FROM warden.interactions FINAL ORDER BY interaction_id"),
        "violations": await store.select("SELECT * FROM warden.violations FINAL ORDER BY violation_id"),
        "letters": letters,
    }


def ch_time(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def as_json(models: list[BaseModel]) -> list[dict[str, Any]] | None:
    return [m.model_dump(mode="json") for m in models] or None


def expected_interaction(request: RequestEvent | None, response: ResponseEvent | None) -> dict[str, Any]:
    """What the folded row holds, said from the events' fields."""
    event = request or response
    assert event is not None
    row: dict[str, Any] = {
        "interaction_id": str(uuid.UUID(event.interaction_id)),
        "started_at": ch_time(event.started_at),
        **{k: getattr(event, k) for k in ("agent_id", "user_id", "session_id", "profile_id", "provider", "model")},
        "auth": event.auth,
        "key_prefix": event.key_prefix,
        **dict.fromkeys(("route", "stream", "request_received", "request_sent", "request_decisions")),
        **dict.fromkeys(("untrusted_since", "status", "finished_at", "latency_ms", "ttft_ms", "input_tokens")),
        **dict.fromkeys(("output_tokens", "cached_tokens", "finish_reason", "response_body", "tool_calls")),
        **dict.fromkeys(("blocked_tool_calls", "response_decisions", "error", "aborted")),
        "blocked": 0,
        **dict.fromkeys(("cache_write_tokens", "reasoning_tokens", "cost_usd", "cost_input_usd", "cost_cached_usd")),
        **dict.fromkeys(("cost_cache_write_usd", "cost_output_usd", "cost_reasoning_usd", "cost_estimated")),
        "cost_note": None,
        "upstream_attempts": None,
    }
    if request is not None:
        row |= {
            "route": request.route,
            "stream": int(request.stream),
            "request_received": request.request_received,
            "request_sent": request.request_sent,
            "request_decisions": as_json(request.decisions),
            "untrusted_since": request.untrusted_since,
            "blocked": int(any(d.enforced and d.kind.endswith("blocked") for d in request.decisions)),
        }
    if response is not None:
        row |= {
            "status": response.status,
            "finished_at": ch_time(response.finished_at),
            "latency_ms": response.latency_ms,
            "ttft_ms": response.ttft_ms,
            "input_tokens": response.usage.input_tokens,
            "output_tokens": response.usage.output_tokens,
            "cached_tokens": response.usage.cached_tokens,
            "finish_reason": response.finish_reason,
            "response_body": response.response_body,
            "tool_calls": as_json(response.tool_calls),
            "blocked_tool_calls": as_json(response.blocked_tool_calls),
            "response_decisions": as_json(response.decisions),
            "error": response.error,
            "aborted": int(response.aborted),
            "blocked": max(row["blocked"], int(bool(response.blocked_tool_calls))),
            "cache_write_tokens": response.usage.cache_write_tokens,
            "reasoning_tokens": response.usage.reasoning_tokens,
            **{f"cost_{part}": getattr(response.cost, part) for part in ("usd", "note")},
            **{f"cost_{part}_usd": getattr(response.cost, f"{part}_usd") for part in ("input", "cached", "output")},
            **{f"cost_{part}_usd": getattr(response.cost, f"{part}_usd") for part in ("cache_write", "reasoning")},
            "cost_estimated": int(response.cost.estimated),
            "upstream_attempts": as_json(response.upstream_attempts),
        }
    return row


def expected_violation(v: ViolationEvent) -> dict[str, Any]:
    return {
        **v.model_dump(include={"violation_id", "detector", "category", "severity", "action", "profile_id"}),
        **v.model_dump(include={"agent_id", "user_id"}),
        "interaction_id": v.interaction_id,
        "detected_at": ch_time(v.detected_at),
        "severity_rank": {"low": 1, "medium": 2, "high": 3, "critical": 4}[v.severity],
        "score": pytest.approx(v.score, rel=1e-6),
        "location": v.evidence.location,
        "excerpt": v.evidence.excerpt,
    }


def read_back(row: dict[str, Any]) -> dict[str, Any]:
    """A row as read, with its JSON columns parsed."""
    return row | {
        k: orjson.loads(row[k]) if row[k] is not None else None
        for k in ("request_decisions", "response_decisions", "tool_calls", "blocked_tool_calls", "upstream_attempts")
        if k in row
    }


def text_of(raw: bytes | dict[str, Any]) -> str:
    return raw.decode() if isinstance(raw, bytes) else orjson.dumps(raw).decode()


def message(event: BaseModel, as_model: bool) -> list[Any]:
    return [TOPIC[event.type], event.interaction_id, event.model_dump_json(), as_model]


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> dict[str, Any]:
    import asyncio

    pairs = INTERACTIONS + ALL_VARIANTS
    # Every interaction twice, under other ids: once as Kafka delivers it, once as the in-process bus does.
    by_model = [
        tuple(e.model_copy(update={"interaction_id": new}) for e in pair)
        for pair, new in ((pair, str(uuid.uuid4())) for pair in pairs)
    ]
    messages = [message(e, False) for pair in pairs for e in pair]
    messages += [message(e, True) for pair in by_model for e in pair]
    messages += [message(IN_FLIGHT, False), message(ORPHAN, True), message(pairs[0][0], False)]  # and a redelivery
    half_violations = len(VIOLATIONS) // 2
    messages += [message(v, False) for v in VIOLATIONS[:half_violations]]
    messages += [message(v, True) for v in VIOLATIONS[half_violations:]]
    unusual = unusual_but_valid()
    messages += [[TOPIC[half], "k", orjson.dumps(doc).decode(), False] for half, doc in unusual]
    messages += [[topic, f"invalid-{n}", text_of(raw), False] for n, (topic, raw, _) in enumerate(INVALID)]
    result = asyncio.run(run_on_chdb(tmp_path_factory.mktemp("chdb"), store_and_read_back, messages=messages))
    models = {"request": RequestEvent, "response": ResponseEvent, "violation": ViolationEvent}
    result["expected"] = {
        "pairs": pairs + by_model,
        "unusual": [models[half].model_validate(doc) for half, doc in unusual],
    }
    return result


def test_every_interaction_is_stored_as_its_events_say_in_every_wire_format_either_way_it_came(stored):
    rows = {row["interaction_id"]: read_back(row) for row in stored["interactions"]}
    for request, response in stored["expected"]["pairs"]:
        assert rows[request.interaction_id] == expected_interaction(request, response), request.route
    assert rows[IN_FLIGHT.interaction_id] == expected_interaction(IN_FLIGHT, None)
    assert rows[ORPHAN.interaction_id] == expected_interaction(None, ORPHAN)


def test_every_violation_is_stored_as_its_event_says(stored):
    rows = {row["violation_id"]: row for row in stored["violations"]}
    for violation in VIOLATIONS:
        assert rows[violation.violation_id] == expected_violation(violation)


def test_events_in_other_forms_are_stored_as_their_models_read_them(stored):
    interactions = {row["interaction_id"]: read_back(row) for row in stored["interactions"]}
    violations = {row["violation_id"]: row for row in stored["violations"]}
    for event in stored["expected"]["unusual"]:
        if isinstance(event, ViolationEvent):
            assert violations[event.violation_id] == expected_violation(event)
        else:
            request, response = (event, None) if isinstance(event, RequestEvent) else (None, event)
            assert interactions[str(uuid.UUID(event.interaction_id))] == expected_interaction(request, response)


def test_what_cannot_be_stored_is_dead_lettered_with_its_reason_and_nothing_else_is_stored(stored):
    letters = {key: letter for _, key, letter in stored["letters"]}
    assert [topic for topic, _, _ in stored["letters"]] == [topics.DEAD_LETTER] * len(INVALID)
    for n, (topic, raw, reason) in enumerate(INVALID):
        letter = letters[f"invalid-{n}"]
        assert letter["topic"] == topic and reason in letter["reason"], letter["reason"]
        assert len(letter["reason"]) < 1000  # the reason names the problem, it does not repeat the payload
        assert letter["payload"] == text_of(raw)
    unusual = [e for e in stored["expected"]["unusual"] if e.type != "violation"]
    assert len(stored["interactions"]) == len(stored["expected"]["pairs"]) + 2 + len(unusual)
    assert len(stored["violations"]) == len(VIOLATIONS) + 1
