"""Spans written as OTLP protobuf (``opentelemetry-proto``), cheaply: most attributes repeat from one interaction to
the next (provider, model, profile, agent, status, a guardrail decision...), so each ``key = value`` is encoded once,
by the protobuf library, into a fragment of a serialised ``Span`` (or ``Span.Event``) holding only that attribute, and
kept. A span's attributes are then the concatenation of their fragments, merged into the span in one call (protobuf
appends a repeated field's elements when parsing): a dictionary lookup per attribute instead of three messages.

Values that are new every time (ids, times, content) are not kept; the cache draws on the process's cache budget
(``WARDEN_CACHE_MAX_BYTES``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, SpanFlags, Status
from opentelemetry.trace import TraceState

from plumbing.bounded import BoundedDict
from plumbing.tracing import any_value

SERVER, CLIENT, INTERNAL = Span.SPAN_KIND_SERVER, Span.SPAN_KIND_CLIENT, Span.SPAN_KIND_INTERNAL
_LOCAL = SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_REMOTE = _LOCAL | SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
_UNIQUE = frozenset(
    {
        "warden.interaction.id",
        "warden.violation.id",
        "warden.request.content",
        "warden.response.content",
        "gen_ai.response.time_to_first_chunk",
    }
)
"""Attributes whose values do not repeat: encoded each time, never kept."""

Event = tuple[str, int, Mapping[str, Any]]
"""A span event: name, time (ns since the epoch), attributes."""


def trace_state(header: str) -> str:
    """The client's ``tracestate`` as the SDK keeps it: validated, or dropped when malformed."""
    if not header:
        return ""
    return ",".join(f"{key}={value}" for key, value in TraceState.from_header([header]).items())


class SpanWriter:
    def __init__(self, cache: BoundedDict[bytes] | None = None) -> None:
        self._cache: BoundedDict[bytes] = cache if cache is not None else BoundedDict()

    def write(
        self,
        spans: Any,
        *,
        trace_id: bytes,
        span_id: bytes,
        parent_id: bytes | None,
        remote_parent: bool,
        state: str,
        name: str,
        kind: int,
        start: int,
        end: int,
        attributes: Mapping[str, Any],
        events: Iterable[Event] = (),
        error: str | None = None,
    ) -> int:
        """One span into ``spans`` (the repeated ``Span`` field of a batch). ``error``: the span failed, with this
        message (``""``: no message). Returns about how many bytes the span takes (what the queue counts)."""
        span = spans.add()
        span.trace_id = trace_id
        span.span_id = span_id
        if parent_id is not None:
            span.parent_span_id = parent_id
        if state:
            span.trace_state = state
        span.name = name
        span.kind = kind
        span.start_time_unix_nano = start
        span.end_time_unix_nano = end
        span.flags = _REMOTE if remote_parent else _LOCAL
        repeated, size = self._attributes(attributes, False, span.attributes)
        span.MergeFromString(repeated)
        size += _SPAN_BYTES + len(name) + len(state) + len(repeated)
        for event_name, at, event_attributes in events:
            event = span.events.add()
            event.time_unix_nano = at
            repeated, added = self._attributes(event_attributes, True, event.attributes, event_name)
            event.MergeFromString(repeated)
            size += _EVENT_BYTES + len(repeated) + added
        if error is not None:
            span.status.code = Status.STATUS_CODE_ERROR
            if error:
                span.status.message = error
                size += len(error)
        return size

    def _attributes(
        self, attributes: Mapping[str, Any], event: bool, into: Any, name: str | None = None
    ) -> tuple[bytes, int]:
        """The attributes that repeat (and the event's name), as the bytes of a span (or event) holding only them;
        the others are added to ``into`` (the repeated attributes field) directly, and their bytes estimated."""
        get, parts, unique = self._cache.get, [], 0
        if name is not None:
            parts.append(self._kept(event, None, name, name.__class__))
        for key, value in attributes.items():
            kind = value.__class__
            if kind is float or key in _UNIQUE:
                added = into.add()
                added.key = key
                added.value.CopyFrom(any_value(value))
                unique += len(key) + (len(value) if kind is str else 8) + 8
                continue
            found = get((event, key, kind, tuple(value) if kind is list else value))
            parts.append(found if found is not None else self._kept(event, key, value, kind))
        return b"".join(parts), unique

    def _kept(self, event: bool, key: str | None, value: Any, kind: type) -> bytes:
        """``key = value`` as a serialised span (or event) holding only that attribute, encoded by the protobuf
        library and kept; ``key`` None: the event's name."""
        fragment = _encode(event, key, value)
        self._cache.put((event, key, kind, tuple(value) if kind is list else value), fragment, 2 * len(fragment) + 120)
        return fragment


_SPAN_BYTES = 16 + 8 + 8 + 9 + 9 + 6 + 12
"""Ids, times, kind, flags and their tags."""
_EVENT_BYTES = 9 + 4


def _encode(event: bool, key: str | None, value: Any) -> bytes:
    if key is None:
        return Span.Event(name=value).SerializeToString()
    attribute = [KeyValue(key=key, value=any_value(value))]
    return (Span.Event(attributes=attribute) if event else Span(attributes=attribute)).SerializeToString()
