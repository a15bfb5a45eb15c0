"""What the settings switch: content only when opted in (and as recorded: masked where the profile redacts), and a
collector that is down costs the proxy nothing but the spans, which are counted as dropped."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.support.agents import new_agent
from tests.support.formats import ask
from tests.support.serve_process import ServeProcess
from tests.support.warden_server import free_port
from tests.tracing.conftest import WAIT_S, attributes, metric, new_traceparent, serve_env, wait_trace


@pytest.fixture(scope="module")
def with_content(tmp_path_factory, fakes, jaeger):
    env = serve_env(
        fakes,
        OTEL_EXPORTER_OTLP_ENDPOINT=jaeger.otlp_endpoint,
        OTEL_SERVICE_NAME="warden-content",
        WARDEN_TRACE_CONTENT="true",
    )
    server = ServeProcess(tmp_path_factory.mktemp("content"), env=env).start()
    yield server
    server.kill()


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_content_is_exported_only_when_opted_in(with_content, jaeger, stream):
    marker = uuid.uuid4().hex
    traceparent, trace_id, _ = new_traceparent()
    headers = {"traceparent": traceparent}
    ask(with_content, "chat", "default", new_agent(), f"say {marker}", stream=stream, headers=headers)
    spans = wait_trace(jaeger, trace_id, lambda spans: any(s.get("kind") in (2, "SPAN_KIND_SERVER") for s in spans))
    (server,) = [s for s in spans if s.get("kind") in (2, "SPAN_KIND_SERVER")]
    got = attributes(server)
    assert marker in got["warden.request.content"]
    assert got["warden.response.content"]


def test_a_dead_collector_drops_and_counts_and_requests_are_answered(tmp_path_factory, fakes):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = serve_env(
        fakes,
        OTEL_EXPORTER_OTLP_ENDPOINT=dead,
        OTEL_EXPORTER_OTLP_TIMEOUT="1",
        OTEL_BSP_MAX_QUEUE_SIZE="4",
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE="2",
    )
    server = ServeProcess(tmp_path_factory.mktemp("dead-collector"), env=env).start()
    try:
        for _ in range(12):
            answer = ask(server, "chat", "default", new_agent(), "hello", stream=False)
            assert answer.text
        deadline = time.monotonic() + WAIT_S
        while metric(server, "warden_trace_spans_dropped_total") < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert metric(server, "warden_trace_spans_dropped_total") >= 1
        assert metric(server, "warden_trace_spans_exported_total") == 0
    finally:
        server.kill()
