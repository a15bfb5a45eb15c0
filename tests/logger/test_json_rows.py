"""The logger's fast path (rows straight from the events' JSON) and the model path (rows from the pydantic models) give
the same rows for every shape of event, so the two cannot drift apart; anything unusual goes through the models."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from pydantic import BaseModel

from plumbing.bus.base import Delivery
from schemas import topics
from schemas.events import Evidence, PolicyDecision, RequestEvent, ResponseEvent, ViolationEvent
from schemas.folding import fold_by_interaction
from schemas.view import ToolCall, Usage
from services.logger import json_rows, rows
from services.logger.intake import to_row

STARTED = datetime(2026, 3, 14, 15, 9, 26, 535897, tzinfo=UTC)


def attribution(**overrides) -> dict:
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

REQUESTS = [
    RequestEvent(**attribution(), route="/chat/completions"),
    RequestEvent(**attribution(agent_id="", user_id="", session_id="", model=""), route="/v1/messages", stream=True),
    RequestEvent(
        **attribution(started_at=STARTED.replace(microsecond=0)),
        route="/chat/completions",
        request_received='{"messages":[{"role":"user","content":"héllo ✓ \\u0000"}]}',
        request_sent='{"messages":[{"role":"user","content":"h***o"}]}',
        decisions=[REDACTION, UNTRUSTED],
        untrusted_since="call_0",
    ),
    RequestEvent(**attribution(), route="/responses", decisions=[BLOCKED]),
    RequestEvent(**attribution(), route="/responses", decisions=[PERMISSIVE]),
    RequestEvent(**attribution(), route="/responses", decisions=[PERMISSIVE, BLOCKED, REDACTION]),
]

RESPONSES = [
    ResponseEvent(**attribution(), status=200, finished_at=STARTED + timedelta(seconds=1), latency_ms=1000.0),
    ResponseEvent(
        **attribution(),
        route="/chat/completions",
        status=200,
        response_body='data: {"choices":[{"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n',
        usage=Usage(input_tokens=120, output_tokens=33, cached_tokens=64),
        finished_at=STARTED.replace(microsecond=0) + timedelta(seconds=2),
        latency_ms=2000.25,
        ttft_ms=150.5,
        finish_reason="stop",
        answer_text="hi",
    ),
    ResponseEvent(
        **attribution(),
        status=200,
        usage=Usage(input_tokens=0, output_tokens=4_000_000_000),
        finished_at=STARTED + timedelta(microseconds=1),
        latency_ms=0,
        finish_reason="tool_calls",
        tool_calls=CALLS,
    ),
    ResponseEvent(
        **attribution(),
        status=200,
        finished_at=STARTED + timedelta(seconds=3),
        latency_ms=3.5,
        tool_calls=CALLS[:1],
        blocked_tool_calls=CALLS[:1],
        decisions=[BLOCKED],
    ),
    ResponseEvent(**attribution(), status=200, finished_at=STARTED, latency_ms=1.0, decisions=[PERMISSIVE]),
    ResponseEvent(
        **attribution(),
        status=502,
        response_body='{"error":{"message":"upstream unreachable"}}',
        finished_at=STARTED + timedelta(seconds=30),
        latency_ms=30000.0,
        error="upstream unreachable: connect timeout",
    ),
    ResponseEvent(
        **attribution(), status=200, response_body="data: {", finished_at=STARTED, latency_ms=12.0, aborted=True
    ),
]

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
        itertools.cycle((0.0, 0.5, 1.0, 0.97)),
        strict=False,
    )
] + [
    ViolationEvent(
        violation_id="v-bare",
        interaction_id=str(uuid.uuid4()),
        detected_at=STARTED.replace(microsecond=0),
        detector="d",
        category="pii",
        severity="low",
        score=1,
        evidence=Evidence(location="response.body"),
        profile_id="default",
    )
]

TOPIC = {RequestEvent: topics.REQUESTS, ResponseEvent: topics.RESPONSES, ViolationEvent: topics.VIOLATIONS}
FAST = {
    RequestEvent: json_rows.request_row,
    ResponseEvent: json_rows.response_row,
    ViolationEvent: json_rows.violation_row,
}
MODEL = {RequestEvent: rows.request_row, ResponseEvent: rows.response_row, ViolationEvent: rows.violation_row}


def delivery(event: BaseModel) -> Delivery:
    return Delivery(TOPIC[type(event)], getattr(event, "interaction_id", None), None, event.model_dump_json().encode())


def raw_delivery(topic: str, payload: bytes | dict) -> Delivery:
    return Delivery(topic, "k", None, payload if isinstance(payload, bytes) else orjson.dumps(payload))


def ids(events: list[BaseModel]) -> list[str]:
    return [f"{type(e).__name__}-{n}" for n, e in enumerate(events)]


EVENTS = REQUESTS + RESPONSES + VIOLATIONS


@pytest.mark.parametrize("event", EVENTS, ids=ids(EVENTS))
def test_the_fast_path_builds_the_row_the_model_path_builds(event):
    document = orjson.loads(event.model_dump_json())
    fast = FAST[type(event)](document)
    assert fast is not None, "an event as the producers write it must take the fast path"
    assert fast == MODEL[type(event)](event)
    assert orjson.dumps(fast, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        MODEL[type(event)](event), option=orjson.OPT_SORT_KEYS
    )
    assert to_row(delivery(event)) == fast


def test_a_batch_folds_into_the_rows_interaction_rows_gives_in_any_order():
    pairs = list(zip(REQUESTS, RESPONSES, strict=False))
    # The same interaction on both sides of each pair, as the ingress publishes them.
    events: list[RequestEvent | ResponseEvent] = []
    for request, response in pairs:
        events += [request, response.model_copy(update={"interaction_id": request.interaction_id})]
    events += RESPONSES[len(pairs) :]  # responses whose request is in another batch
    events.append(events[0])  # a redelivered duplicate inside one batch
    for order in (events, list(reversed(events)), events[1::2] + events[::2]):
        fast = fold_by_interaction([to_row(delivery(e)) for e in order])
        assert fast == rows.interaction_rows(order)
    assert len(rows.interaction_rows(events)) == len(pairs) + len(RESPONSES[len(pairs) :])


def test_a_request_and_its_response_fold_into_one_row_with_the_block_flag_of_either():
    request = REQUESTS[3]  # an enforced block
    response = RESPONSES[0].model_copy(update={"interaction_id": request.interaction_id})
    (row,) = fold_by_interaction([to_row(delivery(request)), to_row(delivery(response))])
    assert row["blocked"] == 1 and row["status"] == 200 and row["route"] == "/responses"


def document(event: BaseModel, drop: tuple[str, ...] = (), **changes) -> dict:
    """The event as its producer writes it, less some fields, with some changed."""
    return {k: v for k, v in orjson.loads(event.model_dump_json()).items() if k not in drop} | changes


UNUSUAL_BUT_VALID = [
    # What the models fill in themselves, left out.
    (RequestEvent, document(REQUESTS[0], drop=("agent_id", "decisions", "request_sent", "schema_version", "type"))),
    (ResponseEvent, document(RESPONSES[1], drop=("usage", "tool_calls", "aborted"))),
    # Times in other spellings: an explicit offset, a space, fewer fraction digits.
    (RequestEvent, document(REQUESTS[0], started_at="2026-03-14T15:09:26.5+00:00")),
    (ResponseEvent, document(RESPONSES[0], finished_at="2026-03-14 15:09:27Z", started_at="2026-03-14T15:09:26.1Z")),
    # Numbers the models coerce.
    (ResponseEvent, document(RESPONSES[0], status="200")),
    (ResponseEvent, document(RESPONSES[0], status=200.0)),
    (ViolationEvent, document(VIOLATIONS[0], score="0.25")),
    # A decision without its defaults.
    (RequestEvent, document(REQUESTS[0], decisions=[{"kind": "tool_call_blocked", "tool": "x"}])),
]


@pytest.mark.parametrize(("model", "payload"), UNUSUAL_BUT_VALID)
def test_an_event_in_another_form_goes_through_its_model_and_is_stored_as_the_model_reads_it(model, payload):
    assert FAST[model](payload) is None
    assert to_row(raw_delivery(TOPIC[model], payload)) == MODEL[model](model.model_validate(payload))


INVALID = [
    (topics.REQUESTS, b'{"interaction_id": "truncated', "invalid RequestEvent"),
    (topics.REQUESTS, b"[1, 2]", "invalid RequestEvent"),
    (topics.REQUESTS, b"", "invalid RequestEvent"),
    (topics.RESPONSES, document(RESPONSES[0], drop=("status",)), "status: Field required"),
    (topics.RESPONSES, document(RESPONSES[0], status="two hundred"), "status: Input should be a valid integer"),
    (topics.RESPONSES, document(RESPONSES[0], finished_at="2026-02-30T10:00:00Z"), "finished_at"),
    (topics.REQUESTS, document(RESPONSES[0]), "invalid RequestEvent"),  # a response on the requests topic
    (topics.VIOLATIONS, document(VIOLATIONS[0], score=1.5), "score"),
    # Accepted by the models, refused by ClickHouse: dead-lettered rather than failing the batch for ever.
    (topics.REQUESTS, document(REQUESTS[0], interaction_id="not-a-uuid"), "interaction_id is not a UUID"),
    (topics.RESPONSES, document(RESPONSES[0], usage={"input_tokens": -1}), "input_tokens out of range"),
    (topics.RESPONSES, document(RESPONSES[0], status=70000), "status out of range"),
    (topics.DEAD_LETTER, document(REQUESTS[0]), "unexpected event on llm.dead-letter"),
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


@pytest.mark.parametrize(("topic", "payload", "reason"), INVALID)
def test_an_event_that_cannot_be_stored_gets_a_reason(topic, payload, reason):
    outcome = to_row(raw_delivery(topic, payload))
    assert isinstance(outcome, str) and reason in outcome
    assert len(outcome) < 1000  # the reason names the problem, it does not repeat the payload


def test_a_reason_from_the_bus_is_kept():
    broken = Delivery(topics.REQUESTS, "k", None, b"\xff", "undecodable payload: bad utf-8")
    assert to_row(broken) == "undecodable payload: bad utf-8"


def test_a_decoded_event_is_stored_through_its_model():
    for event in (REQUESTS[2], RESPONSES[2], VIOLATIONS[0]):
        assert to_row(Delivery(TOPIC[type(event)], "k", event)) == MODEL[type(event)](event)
