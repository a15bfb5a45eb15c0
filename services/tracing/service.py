"""The tracing subscription: each interaction's spans, built from its events once its answer is recorded.

The ingress chose the ids (and sent the upstream its client span's in ``traceparent``) and timed everything; here the
spans are started and ended with those ids and times, in a thread of their own, and handed to the SDK's batch
processor. Per interaction: a server span (the request to Warden, child of the client's span when it sent a
``traceparent``), a client span per upstream attempt, the first chunk and each guardrail decision as events; per
finding of the guard, a span in the interaction's trace.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from opentelemetry import trace
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from plumbing.bounded import BoundedDict, CacheBudget
from plumbing.bus.base import Bus, Subscription
from plumbing.tracing import SpanExport
from schemas import topics
from schemas.events import RequestEvent, ResponseEvent, TraceContext, ViolationEvent
from services.tracing import spans
from services.tracing.settings import TracingSettings

log = logging.getLogger(__name__)
GROUP = "warden-tracing"
Event = RequestEvent | ResponseEvent | ViolationEvent


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ns(moment: datetime) -> int:
    """Exact (a float's seconds would round the microseconds)."""
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def _offset_ns(milliseconds: float) -> int:
    return round(milliseconds * 1_000_000)


def _remote(context: TraceContext, span_id: str | None) -> trace.Context | None:
    """The OpenTelemetry context whose current span is ``span_id`` of ``context``'s trace (None: a root)."""
    if span_id is None:
        return None
    parent = SpanContext(
        trace_id=int(context.trace_id, 16),
        span_id=int(span_id, 16),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if context.sampled else TraceFlags.DEFAULT),
        trace_state=TraceState.from_header([context.tracestate]) if context.tracestate else TraceState(),
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(parent))


class TracingService:
    def __init__(self, bus: Bus, export: SpanExport, settings: TracingSettings, group: str = GROUP) -> None:
        self._bus = bus
        self._export = export
        self._settings = settings
        self._pending: BoundedDict[spans.RequestPart] = BoundedDict(
            budget=CacheBudget(settings.trace_pending_max_bytes)
        )
        # Building spans is CPU work: off the event loop, which in the embedded default also serves the proxy.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tracing")
        self.subscription = Subscription(
            (topics.REQUESTS, topics.RESPONSES, topics.VIOLATIONS),
            RequestEvent | ResponseEvent | ViolationEvent,
            self.handle,
            group=group,
            max_batch=1000,
            max_wait_s=0.2,
        )

    def register(self) -> None:
        self._bus.subscribe(self.subscription)

    async def handle(self, events: list[Event]) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._build, events)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._export.close()

    def _build(self, events: list[Event]) -> None:
        for event in events:
            context = event.trace
            if context is None or not context.sampled:
                continue
            try:
                if isinstance(event, RequestEvent):
                    self._pending.put(event.interaction_id, self._request_part(event))
                elif isinstance(event, ResponseEvent):
                    request = self._pending.get(event.interaction_id) or spans.RequestPart()
                    self._pending.discard(event.interaction_id)
                    self._interaction(event, context, request)
                else:
                    self._finding(event, context)
            except Exception:  # one event that cannot be traced must not stop the others
                log.exception("could not build spans", extra={"fields": {"interaction_id": event.interaction_id}})

    def _request_part(self, event: RequestEvent) -> spans.RequestPart:
        content = None
        if self._settings.trace_content:
            sent = event.request_sent if event.request_sent is not None else event.request_received
            content = spans.cut(sent, self._settings.trace_content_max_bytes)
        return spans.RequestPart(stream=event.stream, method=event.method, decisions=event.decisions, content=content)

    def _interaction(self, event: ResponseEvent, context: TraceContext, request: spans.RequestPart) -> None:
        tracer, ids = self._export.tracer, self._export.ids
        trace_id = int(context.trace_id, 16)
        # Every time from the start plus an offset the ingress measured on one monotonic clock: the client span then
        # ends within the server span (the datetimes hold only microseconds).
        started = _ns(event.started_at)
        finished = started + _offset_ns(event.latency_ms)
        name = spans.span_name(event.route, event.model, request.method)
        attributes = spans.server_attributes(
            event, request, self._settings.trace_content, self._settings.trace_content_max_bytes
        )
        ids.preset(trace_id, int(context.span_id, 16))
        server = tracer.start_span(
            name,
            context=_remote(context, context.parent_span_id),
            kind=SpanKind.SERVER,
            attributes=attributes,
            start_time=started,
        )
        for decision in request.decisions:
            server.add_event(spans.DECISION_EVENT, spans.decision_event(decision), timestamp=started)
        for decision in event.decisions:
            server.add_event(spans.DECISION_EVENT, spans.decision_event(decision), timestamp=finished)
        if event.ttft_ms is not None:
            first = started + _offset_ns(event.ttft_ms)
            ttft = {"gen_ai.response.time_to_first_chunk": event.ttft_ms / 1000}
            server.add_event(spans.FIRST_CHUNK_EVENT, ttft, timestamp=first)
        parent = trace.set_span_in_context(server)
        for attempt in event.upstream_attempts:
            if not attempt.span_id:
                continue  # an attempt recorded while tracing was off
            ids.preset(trace_id, int(attempt.span_id, 16))
            client = tracer.start_span(
                name,
                context=parent,
                kind=SpanKind.CLIENT,
                attributes=spans.common_attributes(event)
                | ({"http.response.status_code": attempt.status} if attempt.status is not None else {})
                | ({"warden.deployment": attempt.deployment} if attempt.deployment else {}),
                start_time=min(started + _offset_ns(attempt.started_ms), finished),
            )
            if attempt.status is None or attempt.status >= 500:
                client.set_attribute("error.type", str(attempt.status) if attempt.status else "unanswered")
                client.set_status(Status(StatusCode.ERROR, attempt.error))
            client.end(end_time=min(started + _offset_ns(attempt.finished_ms), finished))
        if event.status >= 500:
            server.set_status(Status(StatusCode.ERROR, event.error))
        server.end(end_time=finished)

    def _finding(self, event: ViolationEvent, context: TraceContext) -> None:
        at = _ns(event.detected_at)
        span = self._export.tracer.start_span(
            f"{spans.FINDING_EVENT} {event.category}",
            context=_remote(context, context.span_id),
            kind=SpanKind.INTERNAL,
            attributes=spans.finding_attributes(event),
            start_time=at,
        )
        span.add_event(spans.FINDING_EVENT, spans.finding_attributes(event), timestamp=at)
        span.end(end_time=at)
