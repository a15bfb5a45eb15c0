"""Fixtures shared by the whole suite: fake upstream providers and one embedded Warden in front of them.

chDB runs one data directory per process at a time, so the suite shares one in-process Warden; tests that need
other settings start ``warden serve`` as a subprocess.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.upstream import FakeUpstream
from tests.support.warden_server import WardenServer

pytest_plugins: list[str] = []  # KAFKA_PLUGIN

API_KEY = "sk-test-0123456789abcdefSECRET"


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeUpstream]:
    with FakeUpstream(provider="openai") as fake:
        yield fake


@pytest.fixture(scope="session")
def warden(tmp_path_factory: pytest.TempPathFactory, fake_openai: FakeUpstream) -> Iterator[WardenServer]:
    server = WardenServer(
        tmp_path_factory.mktemp("warden-data"),
        openai_base_url=fake_openai.url + "/v1",
        custom_providers={"deadend": "http://127.0.0.1:9/v1"},
        max_body_bytes=1024 * 1024,
    ).start()
    yield server
    server.stop()
