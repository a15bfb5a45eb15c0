"""The hot path's share of tracing: read the client's W3C ``traceparent``, choose the ids of the ingress's spans, and
send the upstream a ``traceparent`` naming the client span of its attempt. Nothing else happens inline: the ids and
timings ride on the events, and a consumer of the events builds and exports the spans afterwards."""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass

from plumbing.tracing import Sampling
from schemas.events import TraceContext, UpstreamAttempt

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_INVALID_TRACE = "0" * 32
_INVALID_SPAN = "0" * 16
_TRACEPARENT_HEADER = b"traceparent"
_TRACESTATE_HEADER = b"tracestate"
_TRACESTATE_MAX = 512
"""W3C Trace Context: a ``tracestate`` of more than 512 characters may be dropped rather than passed on."""


@dataclass(frozen=True, slots=True)
class Parent:
    trace_id: str
    span_id: str
    sampled: bool


def parse_traceparent(value: str) -> Parent | None:
    """The client's span, or None for a header W3C Trace Context says to ignore (then a new trace starts)."""
    found = _TRACEPARENT.fullmatch(value.strip())
    if found is None:
        return None
    version, trace_id, span_id, flags, rest = found.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _INVALID_TRACE or span_id == _INVALID_SPAN:
        return None
    return Parent(trace_id, span_id, bool(int(flags, 16) & 1))


def new_span_id() -> str:
    return f"{random.getrandbits(64) or 1:016x}"


def new_trace_id() -> str:
    return f"{random.getrandbits(128) or 1:032x}"


@dataclass(slots=True)
class OpenAttempt:
    """An upstream request under way."""

    span_id: str
    started: float
    """perf_counter() when it was sent."""
    status: int | None = None

    def closed(self, interaction_started: float, finished: float, error: str | None) -> UpstreamAttempt:
        return UpstreamAttempt(
            span_id=self.span_id,
            started_ms=(self.started - interaction_started) * 1000.0,
            finished_ms=(finished - interaction_started) * 1000.0,
            status=self.status,
            error=error if self.status is None or self.status >= 500 else None,
        )


class TraceStarter:
    """Starts or continues each interaction's trace; ``None`` sampling: tracing is off (nothing is added to the
    events and the client's trace headers pass upstream untouched, like any other header)."""

    def __init__(self, sampling: Sampling | None) -> None:
        self._sampling = sampling

    @property
    def enabled(self) -> bool:
        return self._sampling is not None

    def begin(self, headers: list[tuple[bytes, bytes]]) -> TraceContext | None:
        if self._sampling is None:
            return None
        parent: Parent | None = None
        tracestate = ""
        for name, value in headers:
            if name == _TRACEPARENT_HEADER:
                parent = parse_traceparent(value.decode("latin-1"))
            elif name == _TRACESTATE_HEADER and len(value) <= _TRACESTATE_MAX:
                tracestate = value.decode("latin-1").strip()
        trace_id = parent.trace_id if parent is not None else new_trace_id()
        sampled = self._sampling.sampled(int(trace_id, 16), parent.sampled if parent is not None else None)
        return TraceContext(
            trace_id=trace_id,
            span_id=new_span_id(),
            parent_span_id=parent.span_id if parent is not None else None,
            sampled=sampled,
            tracestate=tracestate if parent is not None else "",
        )

    def attempt(self, trace: TraceContext | None, headers: list[tuple[str, str]]) -> OpenAttempt | None:
        """A new upstream attempt: its client span's id replaces the client's ``traceparent`` in ``headers``."""
        if trace is None:
            return None
        attempt = OpenAttempt(new_span_id(), time.perf_counter())
        headers[:] = [(name, value) for name, value in headers if name.lower() not in ("traceparent", "tracestate")]
        headers.append(("traceparent", f"00-{trace.trace_id}-{attempt.span_id}-{'01' if trace.sampled else '00'}"))
        if trace.tracestate:
            headers.append(("tracestate", trace.tracestate))
        return attempt
