"""A ``warden serve`` that exports its traces to the session's Jaeger, in front of the suite's fake upstreams."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import CUSTOM_PROVIDER
from tests.support.jaeger import JaegerServer
from tests.support.serve_process import ServeProcess

WORKERS = 2
"""The traced ``warden serve``'s proxy workers."""
WAIT_S = 60.0
"""How long a test waits for Jaeger to hold what Warden exported (batched, then Jaeger's own batch)."""


def serve_env(fakes: dict[str, Any], **extra: str) -> dict[str, str]:
    return {
        "WARDEN_OPENAI_BASE_URL": fakes["openai"].url + "/v1",
        "WARDEN_ANTHROPIC_BASE_URL": fakes["anthropic"].base_url,
        "WARDEN_GEMINI_BASE_URL": fakes["gemini"].base_url,
        "WARDEN_CUSTOM_PROVIDERS": json.dumps({CUSTOM_PROVIDER: fakes["custom"].base_url}),
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        **extra,
    }


@pytest.fixture(scope="session")
def fakes(fake_openai, fake_anthropic, fake_gemini, fake_compatible) -> dict[str, Any]:
    return {"openai": fake_openai, "anthropic": fake_anthropic, "gemini": fake_gemini, "custom": fake_compatible}


@pytest.fixture(scope="module")
def service_name() -> str:
    return f"warden-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def traced(tmp_path_factory, fakes, jaeger: JaegerServer, service_name: str) -> Iterator[ServeProcess]:
    """Warden exporting every interaction's spans to Jaeger (content not opted in), with two proxy workers: the spans
    are built in the background process from what each worker hands over."""
    env = serve_env(fakes, OTEL_EXPORTER_OTLP_ENDPOINT=jaeger.otlp_endpoint, OTEL_SERVICE_NAME=service_name)
    server = ServeProcess(tmp_path_factory.mktemp("traced"), env=env, args=["--workers", str(WORKERS)]).start()
    yield server
    server.kill()


def wait_trace(
    jaeger: JaegerServer, trace_id: str, done: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """The trace's spans once ``done`` says they are all there."""
    deadline = time.monotonic() + WAIT_S
    spans: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        spans = jaeger.trace(trace_id)
        if done(spans):
            return spans
        time.sleep(0.2)
    raise AssertionError(f"trace {trace_id} incomplete after {WAIT_S} s: {[s['name'] for s in spans]}")


def attributes(item: dict[str, Any]) -> dict[str, Any]:
    """OTLP JSON attributes as a plain dict."""
    out: dict[str, Any] = {}
    for attribute in item.get("attributes", []):
        value = attribute["value"]
        if "arrayValue" in value:
            out[attribute["key"]] = [next(iter(v.values())) for v in value["arrayValue"].get("values", [])]
        else:
            out[attribute["key"]] = next(iter(value.values()), None)
    return out


def new_traceparent() -> tuple[str, str, str]:
    """A client's span: (traceparent, trace id, span id)."""
    trace_id, span_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def metric(server: ServeProcess, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))
