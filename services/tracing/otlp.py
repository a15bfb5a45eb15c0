"""Spans encoded as OTLP protobuf (``opentelemetry-proto``), cheaply. A serialised message is the concatenation of
its fields' encodings, and a repeated field's elements are simply appended: so a span's bytes are assembled from
pieces the protobuf library encoded. Most attributes repeat from one interaction to the next (provider, model,
profile, agent, status, a guardrail decision...): each ``key = value`` is encoded once, as a ``Span`` (or
``Span.Event``) holding only that attribute, and kept; a span is then its ids and times (one message), plus the kept
pieces, plus the few values that are new every time (ids, times, content), which are encoded each time and not kept.
An event is its time plus kept pieces, framed as the span's ``events`` field (``plumbing.tracing.frame``). No span
message is built or parsed, which costs more than all the rest.

The cache draws on the process's cache budget (``WARDEN_CACHE_MAX_BYTES``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, SpanFlags, Status
from opentelemetry.trace import TraceState

from plumbing.bounded import BoundedDict
from plumbing.tracing import any_value, frame

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


_EVENTS_FIELD = Span.DESCRIPTOR.fields_by_name["events"].number


class SpanWriter:
    """Not thread-safe: it reuses messages (one per attribute key) to encode values, which costs a sixth of making
    new ones."""

    def __init__(self, cache: BoundedDict[bytes] | None = None) -> None:
        self._cache: BoundedDict[bytes] = cache if cache is not None else BoundedDict()
        self._scratch: dict[tuple[bool, str], tuple[Any, Any]] = {}
        self._event_time = Span.Event()

    def span(
        self,
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
    ) -> bytes:
        """One span, serialised. ``error``: the span failed, with this message (``""``: no message)."""
        head = Span(
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=parent_id,
            trace_state=state,
            name=name,
            kind=kind,
            start_time_unix_nano=start,
            end_time_unix_nano=end,
            flags=_REMOTE if remote_parent else _LOCAL,
            status=Status(code=Status.STATUS_CODE_ERROR, message=error) if error is not None else None,
        )
        parts = [head.SerializeToString()]
        self._attributes(parts, attributes, event=False)
        for event_name, at, event_attributes in events:
            self._event_time.time_unix_nano = at
            event = [self._event_time.SerializeToString()]
            self._attributes(event, event_attributes, event=True, name=event_name)
            parts.append(frame(_EVENTS_FIELD, b"".join(event)))
        return b"".join(parts)

    def _attributes(self, parts: list[bytes], attributes: Mapping[str, Any], event: bool, name: str = "") -> None:
        """Appends the pieces of ``attributes`` (and of the event's ``name``) to ``parts``."""
        get = self._cache.get
        if name:
            found = get((event, None, str, name))
            parts.append(found if found is not None else self._kept(event, None, name, str))
        for key, value in attributes.items():
            if key in _UNIQUE:
                parts.append(self._encode(event, key, value))
                continue
            kind = value.__class__
            found = get((event, key, kind, tuple(value) if kind is list else value))
            parts.append(found if found is not None else self._kept(event, key, value, kind))

    def _kept(self, event: bool, key: str | None, value: Any, kind: type) -> bytes:
        """``key = value`` as a serialised span (or event) holding only that attribute, encoded by the protobuf
        library and kept; ``key`` None: the event's name."""
        fragment = self._encode(event, key, value)
        self._cache.put((event, key, kind, tuple(value) if kind is list else value), fragment, 2 * len(fragment) + 120)
        return fragment

    def _encode(self, event: bool, key: str | None, value: Any) -> bytes:
        """``key = value`` as a serialised span (or event) holding only that attribute (``key`` None: the event's
        name)."""
        if key is None:
            return Span.Event(name=value).SerializeToString()
        field = _FIELDS.get(value.__class__)
        if field is None:  # an array
            attribute = [KeyValue(key=key, value=any_value(value))]
            return (Span.Event(attributes=attribute) if event else Span(attributes=attribute)).SerializeToString()
        scratch = self._scratch.get((event, key))
        if scratch is None:
            holder = Span.Event(attributes=[KeyValue(key=key)]) if event else Span(attributes=[KeyValue(key=key)])
            scratch = self._scratch[(event, key)] = (holder, holder.attributes[0].value)
        holder, any_value_ = scratch
        setattr(any_value_, field, value)  # the value's one field: setting it clears the others
        return holder.SerializeToString()


_FIELDS = {str: "string_value", bool: "bool_value", int: "int_value", float: "double_value", bytes: "bytes_value"}
