"""Fixtures shared by the whole suite: fake upstream providers and one embedded Warden in front of them.

chDB runs one data directory per process at a time, so the suite shares one in-process Warden; tests that need
other settings start ``warden serve`` as a subprocess.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from tests.fakes.upstream import FakeUpstream
from tests.support.warden_server import WardenServer

pytest_plugins = [
    "tests.support.kafka_fixture",
    "tests.support.clickhouse_fixture",
    "tests.support.jaeger_fixture",
    "tests.support.redis_fixture",
]

API_KEY = "sk-test-0123456789abcdefSECRET"
MASTER_KEY = "q3M0vJ6p0QXh0mV4kP0m3l9fC2dXo0pWcE7tWk2a9Hs="
"""The shared Warden's WARDEN_MASTER_KEY (a Fernet key made for the tests)."""
CUSTOM_PROVIDER = "local-llm"
"""The name the shared Warden serves the OpenAI-compatible ``fake_compatible`` upstream under."""


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeUpstream]:
    with FakeUpstream(provider="openai") as fake:
        yield fake


@pytest.fixture(scope="session")
def fake_anthropic() -> Iterator[FakeUpstream]:
    with FakeUpstream(provider="anthropic") as fake:
        yield fake


@pytest.fixture(scope="session")
def fake_gemini() -> Iterator[FakeUpstream]:
    with FakeUpstream(provider="gemini") as fake:
        yield fake


@pytest.fixture(scope="session")
def fake_bedrock() -> Iterator[FakeUpstream]:
    """Accepts only requests signed by one of its ``AWS_KEYS`` (Warden's own is ``BEDROCK_ACCESS_KEY_ID``)."""
    with FakeUpstream(provider="bedrock") as fake:
        yield fake


BEDROCK_ACCESS_KEY_ID = "AKIAWARDENFAKE000001"
"""The shared Warden's own AWS access key id for Bedrock (its secret is the fake's ``AWS_KEYS`` entry)."""
BEDROCK_REGION = "eu-west-3"


@pytest.fixture(scope="session")
def fake_azure() -> Iterator[FakeUpstream]:
    with FakeUpstream(provider="azure") as fake:
        yield fake


@pytest.fixture(scope="session")
def fake_compatible() -> Iterator[FakeUpstream]:
    """A second OpenAI-shaped upstream, configured in Warden as the custom provider ``CUSTOM_PROVIDER``."""
    with FakeUpstream(provider="openai") as fake:
        yield fake


CONFIGURED_PRICES = {
    # A custom provider's own model, which no catalogue knows.
    f"{CUSTOM_PROVIDER}/llama-3.1-8b": {"input_mtok": 0.2, "output_mtok": 0.6, "cache_read_mtok": 0.05},
    # A negotiated rate for a model the catalogue prices otherwise: the configured price wins.
    "openai/gpt-4.1-nano": {"input_mtok": 7, "output_mtok": 11, "cache_read_mtok": 3, "reasoning_mtok": 13},
}


@pytest.fixture(scope="session")
def warden(
    tmp_path_factory: pytest.TempPathFactory,
    fake_openai: FakeUpstream,
    fake_anthropic: FakeUpstream,
    fake_gemini: FakeUpstream,
    fake_compatible: FakeUpstream,
    fake_bedrock: FakeUpstream,
    fake_azure: FakeUpstream,
) -> Iterator[WardenServer]:
    from tests.fakes.bedrock_api import AWS_KEYS

    server = WardenServer(
        tmp_path_factory.mktemp("warden-data"),
        openai_base_url=fake_openai.url + "/v1",
        anthropic_base_url=fake_anthropic.base_url,
        gemini_base_url=fake_gemini.base_url,
        azure_base_url=fake_azure.base_url,
        custom_providers={"deadend": "http://127.0.0.1:9/v1", CUSTOM_PROVIDER: fake_compatible.base_url},
        max_body_bytes=1024 * 1024,
        # The whole suite's agents and models go through this one Warden: its metrics must not fold the later ones into
        # `__other__` (the caps themselves are tested on metrics objects of their own in tests/ingress/test_metrics.py).
        agent_label_cap=100_000,
        metrics_label_cap=100_000,
        master_key=MASTER_KEY,
        prices=CONFIGURED_PRICES,
        provider_base_urls={"bedrock": fake_bedrock.url},
        bedrock_region=BEDROCK_REGION,
        bedrock_access_key_id=BEDROCK_ACCESS_KEY_ID,
        bedrock_secret_access_key=AWS_KEYS[BEDROCK_ACCESS_KEY_ID],
    ).start()
    yield server
    server.stop()


def malformed_json_client(http: ModuleType) -> Any:
    """A client of ``http`` (``httpx``, or ``httpx2`` which the openai and anthropic SDKs take) that sends every
    request body cut in half: lets an official SDK meet Warden's own 400 for a body that is not JSON."""

    class CutBodies(http.HTTPTransport):  # type: ignore[name-defined]
        def handle_request(self, request: Any) -> Any:
            body = request.read()
            if body:
                headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() != "content-length"]
                request = http.Request(request.method, request.url, headers=headers, content=body[: len(body) // 2])
            return super().handle_request(request)

    return http.Client(transport=CutBodies())
