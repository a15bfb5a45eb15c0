"""The export: the standard variables as the OpenTelemetry exporter and batch processor read them, the queue's bounds,
what a collector that refuses a batch costs (the batch, counted), compression and headers as the collector receives
them."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from prometheus_client import CollectorRegistry

from plumbing.tracing import BatchSettings, SpanExport, otlp_exporter
from tests.tracing.otlp_receiver import Receiver


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()


def _span(n: int, name: str = "chat gpt-4o") -> bytes:
    return Span(trace_id=n.to_bytes(16, "big"), span_id=n.to_bytes(8, "big"), name=name).SerializeToString()


def _counts(registry: CollectorRegistry) -> tuple[float, dict[str, float]]:
    exported = registry.get_sample_value("warden_trace_spans_exported_total") or 0.0
    dropped = {
        reason: registry.get_sample_value("warden_trace_spans_dropped_total", {"reason": reason}) or 0.0
        for reason in ("queue_full", "export_failed")
    }
    return exported, dropped


def _export(export: SpanExport, spans: list[list[bytes]]) -> list[bool]:
    async def run() -> list[bool]:
        taken = []
        for group in spans:
            taken.append(export.room(len(group)))
            if taken[-1]:
                export.add(group)
        return taken

    taken = asyncio.run(run())
    assert export.flush()
    return taken


def test_the_batch_variables_are_read_as_the_batch_processor_reads_them():
    settings = BatchSettings.from_env(
        {"OTEL_BSP_MAX_QUEUE_SIZE": "100", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "10", "OTEL_BSP_SCHEDULE_DELAY": "250"}
    )
    assert (settings.max_queue_spans, settings.max_batch_spans, settings.delay_s) == (100, 10, 0.25)
    # Unreadable numbers fall back to the defaults; a batch cannot be larger than the queue.
    other = BatchSettings.from_env({"OTEL_BSP_MAX_QUEUE_SIZE": "many", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "4096"})
    assert (other.max_queue_spans, other.max_batch_spans, other.delay_s) == (2048, 2048, 5.0)


def test_the_standard_variables_take_batches_to_the_collector_compressed_with_their_headers(receiver, monkeypatch):
    """The OpenTelemetry exporter reads the endpoint, headers and compression itself, ``_TRACES_`` forms first."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9/")  # the traces form wins over it
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.url + "/otlp/spans")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20abc,x-tenant=t1")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "3")
    registry = CollectorRegistry()
    export = SpanExport(registry)
    _export(export, [[_span(n)] for n in range(1, 8)])
    export.close()
    assert [len(list(request.resource_spans[0].scope_spans[0].spans)) for _, request in receiver.requests] == [3, 3, 1]
    headers, _ = receiver.requests[0]
    assert headers["path"] == "/otlp/spans"
    assert headers["content-encoding"] == "gzip" and headers["content-type"] == "application/x-protobuf"
    assert headers["authorization"] == "Bearer abc" and headers["x-tenant"] == "t1"
    assert sorted(int.from_bytes(span.span_id, "big") for span in receiver.spans()) == list(range(1, 8))
    assert _counts(registry) == (7.0, {"queue_full": 0.0, "export_failed": 0.0})


def test_the_general_endpoint_gets_the_traces_path(receiver, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url + "/")
    export = SpanExport(CollectorRegistry())
    _export(export, [[_span(1)]])
    export.close()
    assert [headers["path"] for headers, _ in receiver.requests] == ["/v1/traces"]


def test_a_batch_over_the_exporters_request_size_limit_is_dropped_and_counted(receiver):
    registry = CollectorRegistry()
    exporter = otlp_exporter(endpoint=receiver.url + "/v1/traces", max_request_size=2000)
    export = SpanExport(registry, BatchSettings(max_batch_spans=1), exporter=exporter)
    _export(export, [[_span(1)], [_span(2, "x" * 3000)], [_span(3)]])
    export.close()
    assert sorted(int.from_bytes(span.span_id, "big") for span in receiver.spans()) == [1, 3]
    assert _counts(registry) == (2.0, {"queue_full": 0.0, "export_failed": 1.0})


def test_a_collector_that_refuses_costs_the_batch_and_it_is_counted(receiver):
    receiver.status = 400  # not worth a retry
    registry = CollectorRegistry()
    export = SpanExport(registry, exporter=otlp_exporter(endpoint=receiver.url + "/v1/traces", timeout=2))
    _export(export, [[_span(1), _span(2)]])
    export.close()
    assert len(receiver.requests) == 1
    assert _counts(registry) == (0.0, {"queue_full": 0.0, "export_failed": 2.0})


def test_a_collector_that_is_unavailable_is_retried_within_the_timeout(receiver):
    receiver.status = 503
    registry = CollectorRegistry()
    export = SpanExport(registry, exporter=otlp_exporter(endpoint=receiver.url + "/v1/traces", timeout=2))
    _export(export, [[_span(1)]])
    export.close()
    assert len(receiver.requests) >= 2, "tried again after about a second, until the timeout was spent"
    assert _counts(registry) == (0.0, {"queue_full": 0.0, "export_failed": 1.0})


def test_the_queue_is_bounded_in_bytes_and_what_does_not_fit_is_counted(receiver):
    registry = CollectorRegistry()
    big = "x" * 3000
    export = SpanExport(registry, max_bytes=5000, exporter=otlp_exporter(endpoint=receiver.url + "/v1/traces"))
    taken = _export(export, [[_span(n, big)] for n in range(1, 5)])
    export.close()
    assert taken == [True, True, False, False]
    assert len(receiver.spans()) == 2
    assert _counts(registry) == (2.0, {"queue_full": 2.0, "export_failed": 0.0})


def test_the_queue_is_bounded_in_spans(receiver):
    registry = CollectorRegistry()
    export = SpanExport(
        registry, BatchSettings(max_queue_spans=3), exporter=otlp_exporter(endpoint=receiver.url + "/v1/traces")
    )
    taken = _export(export, [[_span(1), _span(2)], [_span(3), _span(4)], [_span(5)]])
    export.close()
    assert taken == [True, False, True]
    assert _counts(registry) == (3.0, {"queue_full": 2.0, "export_failed": 0.0})
