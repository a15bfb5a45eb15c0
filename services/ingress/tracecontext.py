"""The hot path's share of tracing: read the client's W3C ``traceparent``, choose the ids of the ingress's spans, and
send the upstream a ``traceparent`` naming the client span of its attempt. Nothing else happens inline: the ids and
timings ride on the events, and a consumer of the events builds and exports the spans afterwards.

Every request pays for this when tracing is on, so it is kept to a few operations: one random draw gives a new
trace's id and its server span's id, the sampler's decision is read from the id only when the ratio needs it, the
upstream headers are searched for the client's trace headers only when their names occur, and the models carried by
the events are validated from the fields that differ from their defaults only."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from operator import itemgetter
from random import getrandbits

from plumbing.tracing import Sampling
from schemas.events import TraceContext, UpstreamAttempt

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_INVALID_TRACE = "0" * 32
_INVALID_SPAN = "0" * 16
_TRACEPARENT_HEADER = b"traceparent"
_TRACESTATE_HEADER = b"tracestate"
_TRACE_HEADERS = ("traceparent", "tracestate")
_TRACESTATE_MAX = 512
"""W3C Trace Context: a ``tracestate`` of more than 512 characters may be dropped rather than passed on."""
_name = itemgetter(0)
# The models' validators called with the fields given: a third cheaper than the models' keyword constructors, which
# pack the same dictionary in Python first.
_trace_context = TraceContext.__pydantic_validator__.validate_python
_upstream_attempt = UpstreamAttempt.__pydantic_validator__.validate_python


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
    return f"{getrandbits(64) or 1:016x}"


def new_trace_ids() -> tuple[str, str]:
    """A new trace's id and its first span's, from one draw of 192 bits (neither all zeros, which W3C forbids)."""
    ids = f"{getrandbits(192):048x}"
    trace_id, span_id = ids[:32], ids[32:]
    if trace_id == _INVALID_TRACE or span_id == _INVALID_SPAN:  # one chance in 2**64: draw again
        return new_trace_ids()
    return trace_id, span_id


@dataclass(slots=True)
class OpenAttempt:
    """An upstream request under way."""

    span_id: str
    started: float
    """perf_counter() when it was sent."""
    status: int | None = None

    def closed(self, interaction_started: float, finished: float, error: str | None) -> UpstreamAttempt:
        fields = {
            "span_id": self.span_id,
            "started_ms": (self.started - interaction_started) * 1000.0,
            "finished_ms": (finished - interaction_started) * 1000.0,
            "status": self.status,
        }
        if error is not None and (self.status is None or self.status >= 500):
            fields["error"] = error
        return _upstream_attempt(fields)


class TraceStarter:
    """Starts or continues each interaction's trace; ``None`` sampling: tracing is off (nothing is added to the
    events and the client's trace headers pass upstream untouched, like any other header)."""

    def __init__(self, sampling: Sampling | None) -> None:
        self._sampling = sampling
        self._root = sampling.root_decision if sampling is not None else None

    @property
    def enabled(self) -> bool:
        return self._sampling is not None

    def begin(self, headers: list[tuple[bytes, bytes]]) -> TraceContext | None:
        sampling = self._sampling
        if sampling is None:
            return None
        received = dict(headers)  # the last of repeated headers, as the loop over them did
        traceparent = received.get(_TRACEPARENT_HEADER)
        parent = parse_traceparent(traceparent.decode("latin-1")) if traceparent is not None else None
        if parent is None:
            trace_id, span_id = new_trace_ids()
            sampled = self._root if self._root is not None else sampling.sampled(int(trace_id, 16), None)
            if sampled:
                return _trace_context({"trace_id": trace_id, "span_id": span_id})
            return _trace_context({"trace_id": trace_id, "span_id": span_id, "sampled": False})
        tracestate = received.get(_TRACESTATE_HEADER)
        return _trace_context(
            {
                "trace_id": parent.trace_id,
                "span_id": new_span_id(),
                "parent_span_id": parent.span_id,
                "sampled": sampling.sampled(int(parent.trace_id, 16), parent.sampled),
                "tracestate": tracestate.decode("latin-1").strip()
                if tracestate is not None and len(tracestate) <= _TRACESTATE_MAX
                else "",
            }
        )

    def attempt(self, trace: TraceContext | None, headers: list[tuple[str, str]]) -> OpenAttempt | None:
        """A new upstream attempt: its client span's id replaces the client's ``traceparent`` in ``headers``."""
        if trace is None:
            return None
        attempt = OpenAttempt(new_span_id(), time.perf_counter())
        if "trace" in "\n".join(map(_name, headers)).lower():  # rarely: the client sent trace headers of its own
            headers[:] = [(name, value) for name, value in headers if name.lower() not in _TRACE_HEADERS]
        headers.append(("traceparent", f"00-{trace.trace_id}-{attempt.span_id}-{'01' if trace.sampled else '00'}"))
        if trace.tracestate:
            headers.append(("tracestate", trace.tracestate))
        return attempt
