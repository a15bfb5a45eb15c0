"""Distributed mode on a real broker: `warden ingress` continues the client's trace and forwards the attempt's span;
`warden guard` builds and exports the spans (the interaction's and its findings') to Jaeger."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from plumbing.bus.topics_admin import create_topics
from tests.support.agents import new_agent
from tests.support.formats import ask
from tests.support.processes import WardenProcess
from tests.support.warden_server import free_port
from tests.tracing.conftest import attributes, new_traceparent, serve_env, wait_trace
from tests.tracing.test_traces_in_jaeger import CLIENT, INTERNAL, SERVER, kind, upstream_traceparent


@pytest.fixture(scope="module")
def ingress(kafka_bootstrap, jaeger, fakes, tmp_path_factory):
    asyncio.run(create_topics(kafka_bootstrap, partitions=3))
    base = tmp_path_factory.mktemp("distributed-traces")
    env = serve_env(
        fakes,
        WARDEN_KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        WARDEN_HOST="127.0.0.1",
        OTEL_EXPORTER_OTLP_ENDPOINT=jaeger.otlp_endpoint,
        OTEL_SERVICE_NAME="warden-distributed",
    )
    processes = []
    try:
        metrics = free_port()
        processes.append(
            WardenProcess(
                ["guard", "--data-dir", str(base / "guard"), "--metrics-port", str(metrics)],
                env,
                ready_url=f"http://127.0.0.1:{metrics}/metrics",
            ).start()
        )
        port = free_port()
        processes.append(
            WardenProcess(
                ["ingress", "--port", str(port), "--data-dir", str(base / "ingress")],
                env,
                ready_url=f"http://127.0.0.1:{port}/healthz",
            ).start()
        )
        processes[-1].url = f"http://127.0.0.1:{port}"
        yield processes[-1]
    finally:
        for process in reversed(processes):
            process.interrupt()


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_the_guard_process_exports_the_ingress_spans(ingress, jaeger, fakes, stream):
    traceparent, trace_id, client_span = new_traceparent()
    token = "ghp_" + "k2M9pQ" * 6  # assembled here so that no literal in the repository looks like one
    ask(
        ingress,
        "chat",
        "default",
        new_agent(),
        f"my token is {token}",
        stream=stream,
        headers={"traceparent": traceparent},
    )

    def complete(spans) -> bool:
        kinds = [kind(s) for s in spans]
        return SERVER in kinds and CLIENT in kinds and INTERNAL in kinds

    spans = wait_trace(jaeger, trace_id, complete)
    (server,) = [s for s in spans if kind(s) == SERVER]
    (client,) = [s for s in spans if kind(s) == CLIENT]
    assert server["service"] == "warden-distributed"
    assert server["parentSpanId"] == client_span
    assert client["parentSpanId"] == server["spanId"]
    assert upstream_traceparent(fakes["openai"], trace_id) == f"00-{trace_id}-{client['spanId']}-01"
    findings = [attributes(s) for s in spans if kind(s) == INTERNAL]
    assert "secret" in {f["gen_ai.security.risk.category"] for f in findings}
    for span in spans:
        assert not any(token[:10] in str(value) for value in attributes(span).values())
    assert uuid.UUID(attributes(server)["warden.interaction.id"])
