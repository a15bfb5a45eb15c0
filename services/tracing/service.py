"""The tracing subscription: each interaction's spans, built from its events once its answer is recorded.

The ingress chose the ids (and sent the upstream its client span's in ``traceparent``) and timed everything; here the
spans are encoded with those ids and times as OTLP protobuf (``otlp.py``) and handed to the exporter
(``plumbing/tracing.py``). Per interaction: a server span (the request to Warden, child of the client's span when it
sent a ``traceparent``), a client span per upstream attempt, the first chunk and each guardrail decision as events;
per finding of the guard, a span in the interaction's trace.

On the event loop, in turns (``Turn``): building a batch's spans is CPU work, and in the embedded default the loop
also serves the proxy. A thread would not spare the loop that work (it holds the interpreter meanwhile) and would add
its hand-offs.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime

from plumbing.bounded import BoundedDict, CacheBudget
from plumbing.bus.base import Bus, Subscription
from plumbing.bus.dispatch import Turn
from plumbing.tracing import SpanExport
from schemas import topics
from schemas.events import TraceContext, ViolationEvent
from services.tracing import decoding, spans
from services.tracing.otlp import CLIENT, INTERNAL, SERVER, SpanWriter, trace_state
from services.tracing.settings import TracingSettings

log = logging.getLogger(__name__)
GROUP = "warden-tracing"
Event = decoding.Traced


def _ns(moment: datetime) -> int:
    """Exact (the float ``timestamp()`` alone would round the microseconds)."""
    # The float's whole seconds are exact: its error (under a microsecond for centuries) cannot reach the next one.
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def _offset_ns(milliseconds: float) -> int:
    return round(milliseconds * 1_000_000)


class TracingService:
    def __init__(self, bus: Bus, export: SpanExport, settings: TracingSettings, group: str = GROUP) -> None:
        self._bus = bus
        self._export = export
        self._settings = settings
        self._writer = SpanWriter()
        self._pending: BoundedDict[spans.RequestPart] = BoundedDict(
            budget=CacheBudget(settings.trace_pending_max_bytes)
        )
        self.subscription = Subscription(
            (topics.REQUESTS, topics.RESPONSES, topics.VIOLATIONS),
            decoding.decoder(settings.trace_content),
            self.handle,
            group=group,
            max_batch=1000,
            max_wait_s=0.2,
        )

    def register(self) -> None:
        self._bus.subscribe(self.subscription)

    async def handle(self, events: list[Event]) -> None:
        turn = Turn()
        for event in events:
            await turn.share()
            self.build(event)

    def close(self) -> None:
        self._export.close()

    def build(self, event: Event) -> None:
        """The spans of one event, if any, into the export's batch."""
        context = event.trace
        if context is None or not context.sampled:
            return
        try:
            if event.type == "request":
                part = self._request_part(event)
                self._pending.put(event.interaction_id, part, part.size())
            elif event.type == "response":
                request = self._pending.get(event.interaction_id) or spans.RequestPart()
                self._pending.discard(event.interaction_id)
                self._interaction(event, context, request)
            else:
                self._finding(event, context)
        except Exception:  # one event that cannot be traced must not stop the others
            log.exception("could not build spans", extra={"fields": {"interaction_id": event.interaction_id}})

    def _request_part(self, event: decoding.Request) -> spans.RequestPart:
        content = None
        if self._settings.trace_content:
            sent = event.request_sent if event.request_sent is not None else event.request_received
            content = spans.cut(sent, self._settings.trace_content_max_bytes)
        return spans.RequestPart(stream=event.stream, method=event.method, decisions=event.decisions, content=content)

    def _interaction(self, event: decoding.Response, context: TraceContext, request: spans.RequestPart) -> None:
        count = 1 + len(event.upstream_attempts)
        if not self._export.room(count):
            return
        encode = self._writer.span
        trace_id, server_id = bytes.fromhex(context.trace_id), bytes.fromhex(context.span_id)
        state = trace_state(context.tracestate)
        # Every time from the start plus an offset the ingress measured on one monotonic clock: the client span then
        # ends within the server span (the datetimes hold only microseconds).
        started = _ns(event.started_at)
        finished = started + _offset_ns(event.latency_ms)
        name = spans.span_name(event.route, event.model, request.method)
        events: list[tuple[str, int, dict]] = [
            (spans.DECISION_EVENT, started, spans.decision_event(decision)) for decision in request.decisions
        ]
        events += [(spans.DECISION_EVENT, finished, spans.decision_event(decision)) for decision in event.decisions]
        if event.ttft_ms is not None:
            ttft = {"gen_ai.response.time_to_first_chunk": event.ttft_ms / 1000}
            events.append((spans.FIRST_CHUNK_EVENT, started + _offset_ns(event.ttft_ms), ttft))
        encoded = [
            encode(
                trace_id=trace_id,
                span_id=server_id,
                parent_id=bytes.fromhex(context.parent_span_id) if context.parent_span_id else None,
                remote_parent=context.parent_span_id is not None,
                state=state,
                name=name,
                kind=SERVER,
                start=started,
                end=finished,
                attributes=spans.server_attributes(
                    event, request, self._settings.trace_content, self._settings.trace_content_max_bytes
                ),
                events=events,
                error=(event.error or "") if event.status >= 500 else None,
            )
        ]
        common = spans.common_attributes(event)
        for attempt in event.upstream_attempts:
            if not attempt.span_id:
                continue  # an attempt recorded while tracing was off
            failed = attempt.status is None or attempt.status >= 500
            attributes = common if attempt.status is None else common | {"http.response.status_code": attempt.status}
            if attempt.deployment:
                attributes = attributes | {"warden.deployment": attempt.deployment}
            if failed:
                attributes = attributes | {"error.type": str(attempt.status) if attempt.status else "unanswered"}
            encoded.append(
                encode(
                    trace_id=trace_id,
                    span_id=bytes.fromhex(attempt.span_id),
                    parent_id=server_id,
                    remote_parent=False,
                    state=state,
                    name=name,
                    kind=CLIENT,
                    start=min(started + _offset_ns(attempt.started_ms), finished),
                    end=min(started + _offset_ns(attempt.finished_ms), finished),
                    attributes=attributes,
                    error=(attempt.error or "") if failed else None,
                )
            )
        self._export.add(encoded)

    def _finding(self, event: ViolationEvent, context: TraceContext) -> None:
        if not self._export.room(1):
            return
        at = _ns(event.detected_at)
        attributes = spans.finding_attributes(event)
        span = self._writer.span(
            trace_id=bytes.fromhex(context.trace_id),
            # The ingress chose no id for a finding: a new one, as the SDK would.
            span_id=_new_span_id(),
            parent_id=bytes.fromhex(context.span_id),
            remote_parent=True,
            state=trace_state(context.tracestate),
            name=f"{spans.FINDING_EVENT} {event.category}",
            kind=INTERNAL,
            start=at,
            end=at,
            attributes=attributes,
            events=[(spans.FINDING_EVENT, at, attributes)],
        )
        self._export.add([span])


def _new_span_id() -> bytes:
    while True:
        span_id = random.getrandbits(64)
        if span_id:
            return span_id.to_bytes(8, "big")
