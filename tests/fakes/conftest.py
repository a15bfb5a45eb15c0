"""This folder's own fake upstreams: one per provider for its tests, reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.upstream import FakeUpstream


@pytest.fixture(scope="module")
def fake_servers() -> Iterator[dict[str, FakeUpstream]]:
    with (
        FakeUpstream("openai") as openai_fake,
        FakeUpstream("anthropic") as anthropic_fake,
        FakeUpstream("gemini") as gemini_fake,
    ):
        yield {"openai": openai_fake, "anthropic": anthropic_fake, "gemini": gemini_fake}


@pytest.fixture
def fake_openai(fake_servers: dict[str, FakeUpstream]) -> FakeUpstream:
    fake_servers["openai"].reset()
    return fake_servers["openai"]


@pytest.fixture
def fake_anthropic(fake_servers: dict[str, FakeUpstream]) -> FakeUpstream:
    fake_servers["anthropic"].reset()
    return fake_servers["anthropic"]


@pytest.fixture
def fake_gemini(fake_servers: dict[str, FakeUpstream]) -> FakeUpstream:
    fake_servers["gemini"].reset()
    return fake_servers["gemini"]
