"""Span export: OTLP protobuf spans, batched and posted to an OTLP/HTTP collector by the OpenTelemetry SDK's exporter
(``opentelemetry-exporter-otlp-proto-http``), configured by the standard ``OTEL_*`` variables, and counted in
Prometheus.

Tracing is on when an OTLP endpoint is named (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) and neither ``OTEL_SDK_DISABLED=true`` nor ``OTEL_TRACES_EXPORTER=none`` turns
it off. The exporter reads the endpoint, headers, timeout, compression, certificates and credential provider itself
(``OTEL_EXPORTER_OTLP_*`` and their ``_TRACES_`` forms) and sends with its own transport, retries and request-size
check; the queue and batch sizes and the delay (``OTEL_BSP_*``) are read here as the SDK's batch processor reads
them; the resource (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``) is the SDK's own.

Not the SDK's tracer, batch processor and span encoder: spans are made after the fact, by a consumer of the events,
with ids and times the ingress chose, so a live span object (its locks, attribute validation, context) has nothing to
do, and the SDK's encoder then walks every attribute again in Python. Encoding the messages of
``opentelemetry-proto`` directly costs a fraction (``bench/trace_cost.py``); the exporter is handed the encoded
export request. Spans arrive serialised (``SpanExport.add``); a full batch, or any other after
``OTEL_BSP_SCHEDULE_DELAY``, is framed into one export request and sent by a thread of its own. A collector that is
down or slow only fills the queue, bounded in bytes (``WARDEN_TRACE_QUEUE_MAX_BYTES``) and in spans
(``OTEL_BSP_MAX_QUEUE_SIZE``): what does not fit is dropped and counted (``warden_trace_spans_dropped_total``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ResourceProto
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, Counter
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

log = logging.getLogger(__name__)

SERVICE_NAME = "warden"
"""The service name when neither ``OTEL_SERVICE_NAME`` nor ``OTEL_RESOURCE_ATTRIBUTES`` gives one."""
INSTRUMENTATION = "warden"
CLOSE_TIMEOUT_S = 5.0
"""At stop, how long the spans still queued may take to reach the collector."""


def tracing_enabled(env: Mapping[str, str] = os.environ) -> bool:
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if "none" in {name.strip().lower() for name in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",")}:
        return False
    return bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


@dataclass(frozen=True, slots=True)
class Sampling:
    """The standard samplers (``OTEL_TRACES_SAMPLER``: ``always_on``, ``always_off``, ``traceidratio`` and their
    ``parentbased_`` forms, ``OTEL_TRACES_SAMPLER_ARG`` the ratio) decided the way the SDK decides them, in a few
    operations: the SDK's sampler objects cost more per call than the rest of the ingress's tracing together."""

    follow_parent: bool = True
    ratio: float = 1.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Sampling:
        name = env.get("OTEL_TRACES_SAMPLER", "parentbased_always_on").strip().lower()
        follow = name.startswith("parentbased_")
        base = name.removeprefix("parentbased_")
        if base == "always_on":
            return cls(follow, 1.0)
        if base == "always_off":
            return cls(follow, 0.0)
        if base == "traceidratio":
            try:
                ratio = float(env.get("OTEL_TRACES_SAMPLER_ARG", "1.0"))
            except ValueError:
                ratio = 1.0  # as the SDK does with an unreadable ratio
            return cls(follow, min(max(ratio, 0.0), 1.0))
        log.warning("OTEL_TRACES_SAMPLER=%s is not one Warden knows: parentbased_always_on instead", name)
        return cls()

    @property
    def root_decision(self) -> bool | None:
        """The decision for a trace Warden starts when the ratio makes it the same for every trace id (always on,
        always off), so the ingress need not read the id as a number; None when it depends on the id."""
        if self.ratio >= 1.0:
            return True
        if self.ratio <= 0.0:
            return False
        return None

    def sampled(self, trace_id: int, parent_sampled: bool | None) -> bool:
        """``parent_sampled``: the client's decision, None without a parent."""
        if parent_sampled is not None and self.follow_parent:
            return parent_sampled
        # TraceIdRatioBased: the trace id's lower 64 bits below the ratio's share of them.
        return (trace_id & _TRACE_ID_LIMIT) < round(self.ratio * (_TRACE_ID_LIMIT + 1))


_TRACE_ID_LIMIT = (1 << 64) - 1


def any_value(value: Any) -> AnyValue:
    """An attribute value as OTLP has it (what the SDK's encoder does, for the types spans carry)."""
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, Sequence):
        return AnyValue(array_value=ArrayValue(values=[any_value(item) for item in value]))
    raise TypeError(f"an attribute cannot be a {type(value).__name__}")


def frame(field: int, data: bytes) -> bytes:
    """``data`` as a length-delimited field of a message: its key, its length (both varints), the bytes. A message
    is the concatenation of its fields, so a batch is framed from spans serialised one by one."""
    out = bytearray()
    for number in ((field << 3) | 2, len(data)):
        while number > 0x7F:
            out.append((number & 0x7F) | 0x80)
            number >>= 7
        out.append(number)
    return bytes(out) + data


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "")
    try:
        value = int(raw) if raw else default
    except ValueError:
        value = -1
    if value <= 0:
        log.warning("%s=%r is not a positive integer: %d instead", name, raw, default)
        return default
    return value


@dataclass(frozen=True, slots=True)
class BatchSettings:
    """How many spans wait and how they are grouped: the batch processor's standard variables, read once at start."""

    max_queue_spans: int = 2048
    max_batch_spans: int = 512
    delay_s: float = 5.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> BatchSettings:
        max_queue = _positive(env, "OTEL_BSP_MAX_QUEUE_SIZE", 2048)
        max_batch = _positive(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)
        if max_batch > max_queue:
            log.warning("OTEL_BSP_MAX_EXPORT_BATCH_SIZE is above OTEL_BSP_MAX_QUEUE_SIZE: the queue size instead")
            max_batch = max_queue
        return cls(
            max_queue_spans=max_queue,
            max_batch_spans=max_batch,
            delay_s=_positive(env, "OTEL_BSP_SCHEDULE_DELAY", 5000) / 1000,
        )


def otlp_exporter(**overrides: Any) -> OTLPSpanExporter:
    """The OpenTelemetry SDK's OTLP/HTTP span exporter, configured by the ``OTEL_EXPORTER_OTLP_*`` variables;
    ``overrides`` are its constructor's arguments (``endpoint``, ``timeout``, ``headers``, ``compression``...).
    Imported here, not at the top: the proxies import this module for ``Sampling`` and never export."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(**overrides)


def send_encoded(exporter: OTLPSpanExporter, request: bytes) -> bool:
    """An export request already encoded, sent the way ``exporter.export`` sends the one it encodes itself: refused
    above the exporter's request-size limit, else posted by its HTTP client (its compression, headers, retries within
    its timeout). True when the collector took it."""
    # The exporter's public ``export`` takes SDK span objects and encodes them itself; its client and size limit are
    # what it uses after encoding (opentelemetry-exporter-otlp-proto-http 1.45: pinned, and tests/tracing covers it).
    limit = exporter._max_request_size
    if 0 < limit < len(request):
        log.warning("span batch of %d bytes is over the exporter's request-size limit of %d", len(request), limit)
        return False
    return exporter._client.export(request).success


class QueueSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WARDEN_", extra="ignore")

    trace_queue_max_bytes: int = 16 * 1024**2
    """Bytes of encoded spans waiting for the collector (batches being sent included); past it new spans are dropped
    and counted."""


@dataclass(slots=True)
class _Batch:
    spans: list[bytes]
    """Each framed as an element of ``ScopeSpans.spans``."""
    size: int


_RESOURCE_SPANS = ExportTraceServiceRequest.DESCRIPTOR.fields_by_name["resource_spans"].number
_SCOPE_SPANS = ResourceSpans.DESCRIPTOR.fields_by_name["scope_spans"].number
_SPANS = ScopeSpans.DESCRIPTOR.fields_by_name["spans"].number


class SpanExport:
    """Where spans go (``add``, from the event loop's thread) and how they reach the collector: sealed into batches,
    queued with a bound, framed into an export request and handed one at a time to the OTLP exporter by a thread of
    its own, each counted as exported or dropped. The thread, not a task of the loop: at stop the loop's thread waits
    (``close``) while the last batches go, and a batch is never half sent by a cancelled task and then sent again."""

    def __init__(
        self,
        registry: CollectorRegistry,
        settings: BatchSettings | None = None,
        max_bytes: int | None = None,
        exporter: OTLPSpanExporter | None = None,
    ) -> None:
        self._exported = Counter("warden_trace_spans_exported", "Spans the collector accepted.", registry=registry)
        self._dropped = Counter(
            "warden_trace_spans_dropped",
            "Spans not exported: the queue was full (a slow or dead collector) or the collector refused them.",
            ["reason"],
            registry=registry,
        )
        self.settings = settings or BatchSettings.from_env()
        self._exporter = exporter if exporter is not None else otlp_exporter()
        self._exporter_shut = False
        self._max_bytes = QueueSettings().trace_queue_max_bytes if max_bytes is None else max_bytes
        self._resource, self._scope = _resource_and_scope()
        self._changed = threading.Condition()
        self._sealed: deque[_Batch] = deque()
        self._queued_bytes = 0
        """Of the sealed batches, until each is settled (the one being sent included)."""
        self._queued_spans = 0
        self._open: list[bytes] = []
        self._open_bytes = 0
        self._generation = 0
        self._closing = False
        self._sender = threading.Thread(target=self._send_forever, name="span-export", daemon=True)
        self._sender.start()

    def room(self, spans: int) -> bool:
        """Whether ``spans`` more spans may be added; if not, they are counted as dropped (``queue_full``)."""
        if (
            self._closing
            or self._queued_bytes + self._open_bytes >= self._max_bytes
            or self._queued_spans + len(self._open) + spans > self.settings.max_queue_spans
        ):
            self._dropped.labels("queue_full").inc(spans)
            return False
        return True

    def add(self, spans: Sequence[bytes]) -> None:
        """Serialised ``Span`` messages for the batch being filled: a full batch is sealed for sending, any other
        after ``OTEL_BSP_SCHEDULE_DELAY``."""
        if not self._open:
            asyncio.get_running_loop().call_later(self.settings.delay_s, self._seal, self._generation)
        for span in spans:
            framed = frame(_SPANS, span)
            self._open.append(framed)
            self._open_bytes += len(framed)
        if len(self._open) >= self.settings.max_batch_spans:
            self._seal()

    def _seal(self, generation: int | None = None) -> None:
        """The batch being filled goes to the sender (``generation``: only if it is still that batch)."""
        if not self._open or generation not in (None, self._generation):
            return
        batch = _Batch(self._open, self._open_bytes)
        with self._changed:
            self._sealed.append(batch)
            self._queued_bytes += batch.size
            self._queued_spans += len(batch.spans)
            self._changed.notify_all()
        self._open, self._open_bytes = [], 0
        self._generation += 1

    def _request(self, batch: _Batch) -> bytes:
        """The ``ExportTraceServiceRequest`` of a batch: one resource, one scope, its spans."""
        scope_spans = frame(_SCOPE_SPANS, self._scope + b"".join(batch.spans))
        return frame(_RESOURCE_SPANS, self._resource + scope_spans)

    def _send_forever(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._sealed or self._closing)
                if not self._sealed:
                    break
                batch = self._sealed[0]
            try:
                sent = send_encoded(self._exporter, self._request(batch))
            except Exception:  # the sender must outlive one bad batch, or every later span would wait forever
                log.exception("span export failed")
                sent = False
            with self._changed:
                self._sealed.popleft()
                self._queued_bytes -= batch.size
                self._queued_spans -= len(batch.spans)
                self._changed.notify_all()
            if sent:
                self._exported.inc(len(batch.spans))
            else:
                self._dropped.labels("export_failed").inc(len(batch.spans))
        self._shut_exporter()

    def _shut_exporter(self) -> None:
        """Once (the exporter warns when shut twice): from the sender when it is done, or from ``close`` when the
        sender overstays."""
        with self._changed:
            if self._exporter_shut:
                return
            self._exporter_shut = True
        self._exporter.shutdown()

    def flush(self, timeout_s: float = CLOSE_TIMEOUT_S) -> bool:
        """Seal what is written and wait until every batch is settled (True) or ``timeout_s`` passed."""
        self._seal()
        with self._changed:
            return self._changed.wait_for(lambda: not self._sealed, timeout_s)

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Send what is queued, then stop the sender; a collector that does not take it within ``timeout_s`` does
        not hold up the stop: the exporter is shut down, which ends its wait between retries (the sender is a
        daemon thread)."""
        self._seal()
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        self._sender.join(timeout_s)
        if self._sender.is_alive():
            self._shut_exporter()


def _resource_and_scope() -> tuple[bytes, bytes]:
    """Every batch's resource (a ``ResourceSpans`` without its scopes) and scope (a ``ScopeSpans`` without its spans),
    serialised once. The resource is the SDK's (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
    ``telemetry.sdk.*``)."""
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    attributes = [KeyValue(key=key, value=any_value(value)) for key, value in resource.attributes.items()]
    resource_spans = ResourceSpans(resource=ResourceProto(attributes=attributes), schema_url=resource.schema_url)
    scope_spans = ScopeSpans(scope=InstrumentationScope(name=INSTRUMENTATION))
    return resource_spans.SerializeToString(), scope_spans.SerializeToString()
