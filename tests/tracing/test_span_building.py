"""The spans built from one interaction's events, read from the SDK's in-memory exporter: the ids the ingress chose
(so the upstream's traceparent names a real span), the parent links, the events at their times, content only when
opted in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry

from plumbing.bus.inprocess import InProcessBus
from plumbing.tracing import SpanExport
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
from services.tracing.service import TracingService
from services.tracing.settings import TracingSettings

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


def _build(events, **settings):
    memory = InMemorySpanExporter()
    export = SpanExport(CollectorRegistry(), memory)
    service = TracingService(InProcessBus(), export, TracingSettings(**settings))
    service._build(events)
    export.flush()
    spans = {span.kind: span for span in memory.get_finished_spans()}
    service.close()
    return spans


def test_the_spans_have_the_ids_and_times_the_ingress_chose():
    start, events = _events()
    spans = _build(events)
    server, client, finding = spans[SpanKind.SERVER], spans[SpanKind.CLIENT], spans[SpanKind.INTERNAL]
    assert {f"{s.context.trace_id:032x}" for s in spans.values()} == {TRACE}
    assert f"{server.context.span_id:016x}" == SERVER_SPAN
    assert f"{server.parent.span_id:016x}" == CLIENT_SPAN and server.parent.is_remote
    assert server.context.trace_state.get("k") == "v"
    assert f"{client.context.span_id:016x}" == ATTEMPT_SPAN
    assert client.parent.span_id == server.context.span_id
    assert finding.parent.span_id == server.context.span_id
    started = int(start.timestamp()) * 10**9 + 123456 * 1000
    assert (server.start_time, server.end_time) == (started, started + 50 * 10**6)
    assert (client.start_time, client.end_time) == (started + 10**6, started + 49 * 10**6)
    first = [e for e in server.events if e.name == "gen_ai.response.first_chunk"]
    assert first[0].timestamp == started + 10 * 10**6
    decisions = {e.attributes["gen_ai.guardrail.policy.id"]: e for e in server.events if "guardrail" in e.name}
    assert decisions["tool_result_untrusted"].timestamp == started
    assert decisions["tool_call_blocked"].attributes["gen_ai.tool.call.id"] == "c1"
    assert server.attributes["warden.blocked"] is True
    assert server.attributes["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    assert "warden.request.content" not in server.attributes and "warden.response.content" not in server.attributes
    assert all("ghp_" not in str(value) for value in finding.attributes.values())


def test_content_only_when_opted_in_and_cut_to_size():
    _, events = _events()
    server = _build(events, trace_content=True, trace_content_max_bytes=12)[SpanKind.SERVER]
    assert server.attributes["warden.request.content"] == PROMPT[:12] + "…"
    assert server.attributes["warden.response.content"] == "the answer"


def test_an_unsampled_interaction_has_no_spans():
    _, events = _events(sampled=False)
    assert _build(events) == {}


def test_an_attempt_that_ends_with_the_interaction_ends_within_its_span():
    _, (request, response, violation) = _events()
    # The ingress measures offsets with a float clock: the attempt ended at the interaction's end plus a fraction of a
    # microsecond the event's whole-microsecond finish time does not have.
    late = UpstreamAttempt(span_id=ATTEMPT_SPAN, started_ms=1.0, finished_ms=50.0004, status=200)
    spans = _build([request, response.model_copy(update={"upstream_attempts": [late]}), violation])
    server, client = spans[SpanKind.SERVER], spans[SpanKind.CLIENT]
    assert server.start_time <= client.start_time <= client.end_time == server.end_time
