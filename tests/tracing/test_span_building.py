"""The spans built from one interaction's events, as the collector receives them (a local OTLP/HTTP receiver decodes
each export request): the ids the ingress chose (so the upstream's traceparent names a real span), the parent links,
the events at their times, every attribute as the span's description says, content only when opted in."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, SpanFlags, Status
from prometheus_client import CollectorRegistry

from plumbing.bus.base import Delivery
from plumbing.bus.inprocess import InProcessBus
from plumbing.tracing import SpanExport, otlp_exporter
from schemas import topics
from schemas.events import (
    Evidence,
    PolicyDecision,
    RequestEvent,
    ResponseEvent,
    TraceContext,
    UpstreamAttempt,
    ViolationEvent,
)
from schemas.view import Usage
from services.tracing import decoding
from services.tracing import spans as described
from services.tracing.service import TracingService
from services.tracing.settings import TracingSettings
from tests.tracing.otlp_receiver import Receiver, plain

TRACE, CLIENT_SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
SERVER_SPAN, ATTEMPT_SPAN = "1" * 16, "2" * 16
PROMPT = '{"messages": [{"role": "user", "content": "the plan"}]}'


def _events(sampled: bool = True):
    start = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    trace = TraceContext(
        trace_id=TRACE, span_id=SERVER_SPAN, parent_span_id=CLIENT_SPAN, sampled=sampled, tracestate="k=v"
    )
    who = {"interaction_id": "i1", "started_at": start, "profile_id": "p", "provider": "openai", "model": "gpt-4o"}
    request = RequestEvent(
        **who,
        route="/chat/completions",
        request_received=PROMPT,
        trace=trace,
        decisions=[PolicyDecision(kind="tool_result_untrusted", tool="fetch_url", reason="web content")],
    )
    response = ResponseEvent(
        **who,
        route="/chat/completions",
        status=200,
        finished_at=start + timedelta(milliseconds=50),
        latency_ms=50.0,
        ttft_ms=10.0,
        usage=Usage(input_tokens=5, output_tokens=7),
        finish_reason="tool_calls",
        response_body='{"model": "gpt-4o-2024-08-06"}',
        answer_text="the answer",
        trace=trace,
        upstream_attempts=[UpstreamAttempt(span_id=ATTEMPT_SPAN, started_ms=1.0, finished_ms=49.0, status=200)],
        decisions=[PolicyDecision(kind="tool_call_blocked", tool="read_file", tool_call_id="c1", reason="no")],
    )
    violation = ViolationEvent(
        violation_id="v1",
        interaction_id="i1",
        detected_at=start + timedelta(seconds=1),
        detector="secrets.github_token",
        category="secret",
        severity="high",
        score=0.9,
        evidence=Evidence(location="request.messages[0]", excerpt="ghp_…"),
        profile_id="p",
        trace=trace,
    )
    return start, [request, response, violation]


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()


def _build(receiver, events, registry=None, **settings):
    export = SpanExport(registry or CollectorRegistry(), exporter=otlp_exporter(endpoint=receiver.url + "/v1/traces"))
    service = TracingService(InProcessBus(), export, TracingSettings(**settings))
    asyncio.run(service.handle(events))
    assert export.flush()
    service.close()
    return {span.kind: span for span in receiver.spans()}


SERVER, CLIENT, INTERNAL = Span.SPAN_KIND_SERVER, Span.SPAN_KIND_CLIENT, Span.SPAN_KIND_INTERNAL
REMOTE = SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK | SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK


def test_the_spans_have_the_ids_and_times_the_ingress_chose(receiver):
    start, events = _events()
    spans = _build(receiver, events)
    server, client, finding = spans[SERVER], spans[CLIENT], spans[INTERNAL]
    assert {s.trace_id.hex() for s in spans.values()} == {TRACE}
    assert server.span_id.hex() == SERVER_SPAN
    assert server.parent_span_id.hex() == CLIENT_SPAN and server.flags == REMOTE
    assert {s.trace_state for s in spans.values()} == {"k=v"}
    assert client.span_id.hex() == ATTEMPT_SPAN
    assert client.parent_span_id == server.span_id and client.flags != REMOTE
    assert finding.parent_span_id == server.span_id and len(finding.span_id) == 8
    started = int(start.timestamp()) * 10**9 + 123456 * 1000
    assert (server.start_time_unix_nano, server.end_time_unix_nano) == (started, started + 50 * 10**6)
    assert (client.start_time_unix_nano, client.end_time_unix_nano) == (started + 10**6, started + 49 * 10**6)
    first = [e for e in server.events if e.name == "gen_ai.response.first_chunk"]
    assert first[0].time_unix_nano == started + 10 * 10**6
    decisions = {plain(e.attributes)["gen_ai.guardrail.policy.id"]: e for e in server.events if "guardrail" in e.name}
    assert decisions["tool_result_untrusted"].time_unix_nano == started
    assert plain(decisions["tool_call_blocked"].attributes)["gen_ai.tool.call.id"] == "c1"
    attributes = plain(server.attributes)
    assert attributes["warden.blocked"] is True
    assert attributes["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    assert "warden.request.content" not in attributes and "warden.response.content" not in attributes
    assert all("ghp_" not in str(value) for value in plain(finding.attributes).values())
    assert server.name == "chat gpt-4o" and server.status.code == Status.STATUS_CODE_UNSET


def test_every_attribute_and_event_is_exported_as_described(receiver):
    """Decoded from the wire, each span and event carries exactly the attributes ``spans`` describes, typed as
    there."""
    _, (request, response, violation) = _events()
    spans = _build(receiver, [request, response, violation])
    part = described.RequestPart(stream=request.stream, method=request.method, decisions=request.decisions)
    assert plain(spans[SERVER].attributes) == described.server_attributes(response, part, False, 100)
    assert plain(spans[CLIENT].attributes) == described.common_attributes(response) | {"http.response.status_code": 200}
    assert plain(spans[INTERNAL].attributes) == described.finding_attributes(violation)
    events = [(e.name, plain(e.attributes)) for e in spans[SERVER].events]
    decided = [*request.decisions, *response.decisions]
    expected = [(described.DECISION_EVENT, described.decision_event(d)) for d in decided]
    expected.append((described.FIRST_CHUNK_EVENT, {"gen_ai.response.time_to_first_chunk": 0.01}))
    assert events == expected
    assert [(e.name, plain(e.attributes)) for e in spans[INTERNAL].events] == [
        (described.FINDING_EVENT, described.finding_attributes(violation))
    ]
    (headers, request_sent), *_ = receiver.requests
    assert headers["path"] == "/v1/traces" and headers["content-type"] == "application/x-protobuf"
    resource = plain(request_sent.resource_spans[0].resource.attributes)
    assert resource["service.name"] and resource["telemetry.sdk.language"] == "python"


def test_a_failed_answer_and_an_unanswered_attempt_are_errors(receiver):
    _, (request, response, _) = _events()
    failed = response.model_copy(
        update={
            "status": 502,
            "error": "upstream unreachable",
            "upstream_attempts": [UpstreamAttempt(span_id=ATTEMPT_SPAN, started_ms=1.0, finished_ms=49.0)],
        }
    )
    spans = _build(receiver, [request, failed])
    server, client = spans[SERVER], spans[CLIENT]
    assert (server.status.code, server.status.message) == (Status.STATUS_CODE_ERROR, "upstream unreachable")
    assert plain(server.attributes)["error.type"] == "502"
    assert client.status.code == Status.STATUS_CODE_ERROR
    assert plain(client.attributes)["error.type"] == "unanswered"
    assert "http.response.status_code" not in plain(client.attributes)


def test_repeated_interactions_are_exported_alike(receiver):
    """The second interaction's attributes come from what the first one encoded: they must still be its own."""
    _, (request, response, violation) = _events()
    other = response.model_copy(update={"interaction_id": "i2", "agent_id": "agent-2", "usage": Usage(input_tokens=9)})
    _build(receiver, [request, response, violation, other])
    servers = [plain(s.attributes) for s in receiver.spans() if s.kind == SERVER]
    assert [s["warden.interaction.id"] for s in servers] == ["i1", "i2"]
    assert [s.get("gen_ai.agent.id") for s in servers] == [None, "agent-2"]
    assert [s["gen_ai.usage.input_tokens"] for s in servers] == [5, 9]
    assert servers[1]["warden.blocked"] is True  # from the answer's own decision, the request part was not kept


def test_content_only_when_opted_in_and_cut_to_size(receiver):
    _, events = _events()
    server = plain(_build(receiver, events, trace_content=True, trace_content_max_bytes=12)[SERVER].attributes)
    assert server["warden.request.content"] == PROMPT[:12] + "…"
    assert server["warden.response.content"] == "the answer"


def test_an_unsampled_interaction_has_no_spans(receiver):
    _, events = _events(sampled=False)
    assert _build(receiver, events) == {}
    assert receiver.requests == []


def test_an_attempt_that_ends_with_the_interaction_ends_within_its_span(receiver):
    _, (request, response, violation) = _events()
    # The ingress measures offsets with a float clock: the attempt ended at the interaction's end plus a fraction of a
    # microsecond the event's whole-microsecond finish time does not have.
    late = UpstreamAttempt(span_id=ATTEMPT_SPAN, started_ms=1.0, finished_ms=50.0004, status=200)
    spans = _build(receiver, [request, response.model_copy(update={"upstream_attempts": [late]}), violation])
    server, client = spans[SERVER], spans[CLIENT]
    assert server.start_time_unix_nano <= client.start_time_unix_nano <= client.end_time_unix_nano
    assert client.end_time_unix_nano == server.end_time_unix_nano


def test_spans_built_from_the_json_of_the_events_are_those_of_the_published_models():
    """In ``warden serve`` and across Kafka the subscription decodes only what spans need from the JSON; in-process it
    takes the published models. Both give the same spans."""
    _, events = _events()
    decode = decoding.decoder(content=True)
    names = {"request": topics.REQUESTS, "response": topics.RESPONSES, "violation": topics.VIOLATIONS}
    decoded = [
        decode(Delivery(topic=names[e.type], key="i1", event=None, raw=e.model_dump_json().encode())) for e in events
    ]
    assert not any(isinstance(e, RequestEvent | ResponseEvent) for e in decoded)
    built = []
    for given in (events, decoded):
        receiver = Receiver()
        try:
            built.append(_build(receiver, given, trace_content=True))
        finally:
            receiver.close()
    published, from_json = built
    assert from_json[SERVER] == published[SERVER] and from_json[CLIENT] == published[CLIENT]
    from_json[INTERNAL].span_id = published[INTERNAL].span_id  # a finding's span id is new each time
    assert from_json[INTERNAL] == published[INTERNAL]
    assert "warden.request.content" in plain(published[SERVER].attributes)
