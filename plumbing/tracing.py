"""Span export: the OpenTelemetry SDK's tracer provider, batched, over OTLP/HTTP, configured by the standard
``OTEL_*`` variables, and counted in Prometheus.

Tracing is on when an OTLP endpoint is named (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) and neither ``OTEL_SDK_DISABLED=true`` nor ``OTEL_TRACES_EXPORTER=none`` turns
it off. The SDK reads the rest itself: headers, timeout, compression, service name and resource attributes, the
sampler, the batch processor's queue and batch sizes and delay, attribute limits.

Spans are made after the fact, by a consumer of the events, with the ids the ingress chose when it forwarded the
request (``PresetIds``) and explicit start and end times; the exporting thread is the SDK's own. A collector that is
down or slow only fills the processor's bounded queue: what does not fit is dropped and counted
(``warden_trace_spans_dropped_total``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry, Counter

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

    def sampled(self, trace_id: int, parent_sampled: bool | None) -> bool:
        """``parent_sampled``: the client's decision, None without a parent."""
        if parent_sampled is not None and self.follow_parent:
            return parent_sampled
        # TraceIdRatioBased: the trace id's lower 64 bits below the ratio's share of them.
        return (trace_id & _TRACE_ID_LIMIT) < round(self.ratio * (_TRACE_ID_LIMIT + 1))


_TRACE_ID_LIMIT = (1 << 64) - 1


class PresetIds(IdGenerator):
    """Hands out the ids the ingress already chose (and sent upstream) for the next span this thread starts."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._random = RandomIdGenerator()

    def preset(self, trace_id: int, span_id: int) -> None:
        self._local.ids = (trace_id, span_id)

    def generate_trace_id(self) -> int:
        ids = getattr(self._local, "ids", None)
        return ids[0] if ids is not None else self._random.generate_trace_id()

    def generate_span_id(self) -> int:
        ids = getattr(self._local, "ids", None)
        if ids is None:
            return self._random.generate_span_id()
        self._local.ids = None
        return ids[1]


class _DropCounts:
    """The batch processor's own accounting (``ProcessorMetricsT`` of the SDK), kept in Prometheus: spans it had to
    drop because its queue was full."""

    def __init__(self, dropped: Counter) -> None:
        self._dropped = dropped

    def register_queue_size(self, get_queue_size: object) -> None:
        pass

    def drop_items(self, count: int, error_type: str = "queue_full") -> None:
        self._dropped.labels(error_type).inc(count)

    def finish_items(self, count: int) -> None:
        pass


class _CountingExporter(SpanExporter):
    """The OTLP exporter, with each batch counted as exported or dropped (a collector that refused or never
    answered, after the exporter's own retries within ``OTEL_EXPORTER_OTLP_TIMEOUT``)."""

    def __init__(self, inner: SpanExporter, exported: Counter, dropped: Counter) -> None:
        self._inner = inner
        self._exported = exported
        self._dropped = dropped

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self._inner.export(spans)
        except Exception:
            log.warning("span export failed", exc_info=True)
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            self._exported.inc(len(spans))
        else:
            self._dropped.labels("export_failed").inc(len(spans))
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class SpanExport:
    """A tracer whose spans go to the OTLP collector in batches, from the SDK's exporting thread."""

    def __init__(self, registry: CollectorRegistry, exporter: SpanExporter | None = None) -> None:
        exported = Counter("warden_trace_spans_exported", "Spans the collector accepted.", registry=registry)
        dropped = Counter(
            "warden_trace_spans_dropped",
            "Spans not exported: the queue was full (a slow or dead collector) or the collector refused them.",
            ["reason"],
            registry=registry,
        )
        self.ids = PresetIds()
        resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
        if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
            resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
        # The ingress decided whether each interaction is sampled (the upstream saw the decision in its traceparent);
        # spans are built only for sampled ones, so the provider records everything it is given.
        self._provider = TracerProvider(
            resource=resource, sampler=ALWAYS_ON, id_generator=self.ids, shutdown_on_exit=False
        )
        self._processor = BatchSpanProcessor(_CountingExporter(exporter or OTLPSpanExporter(), exported, dropped))
        batch = getattr(self._processor, "_batch_processor", None)
        if batch is not None and hasattr(batch, "_metrics"):
            batch._metrics = _DropCounts(dropped)  # the SDK offers no other hook to count full-queue drops
        self._provider.add_span_processor(self._processor)
        self.tracer: Tracer = self._provider.get_tracer(INSTRUMENTATION)

    def flush(self, timeout_s: float = 5.0) -> bool:
        return self._provider.force_flush(int(timeout_s * 1000))

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Export what is queued, then stop the exporting thread; a collector that does not take it within
        ``timeout_s`` does not hold up the stop (the SDK itself would wait up to 30 s)."""
        closing = threading.Thread(target=self._provider.shutdown, name="span-export-close", daemon=True)
        closing.start()
        closing.join(timeout_s)
