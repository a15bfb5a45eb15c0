"""Two fake upstreams per provider (deployments "a" and "b" of a model alias), and helpers that configure aliases
through the admin API of the shared Warden: every test makes deployments of its own, so breakers and counts are
its own too."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.fakes.upstream import PROVIDERS, FakeUpstream


@pytest.fixture(scope="module")
def pairs() -> Iterator[dict[str, tuple[FakeUpstream, FakeUpstream]]]:
    fakes = {provider: (FakeUpstream(provider).start(), FakeUpstream(provider).start()) for provider in PROVIDERS}
    yield fakes
    for first, second in fakes.values():
        first.stop()
        second.stop()


@pytest.fixture
def fakes(pairs: dict[str, tuple[FakeUpstream, FakeUpstream]]) -> dict[str, tuple[FakeUpstream, FakeUpstream]]:
    for first, second in pairs.values():
        first.reset()
        second.reset()
    return pairs


def closed_port_url() -> str:
    """A base URL nothing listens on: connecting is refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


@dataclass
class Alias:
    provider: str
    model: str
    deployments: list[str]


def configure(
    warden: Any,
    provider: str,
    base_urls: list[str],
    *,
    model: str | None = None,
    send_model: str | None = None,
    priorities: list[int] | None = None,
    weights: list[float] | None = None,
    max_attempts: int = 3,
    strategy: str = "weighted",
    **deployment: Any,
) -> Alias:
    """Deployments at ``base_urls`` (tried in that order unless ``priorities`` say otherwise) and an alias of a new
    model name over them, made through the admin API."""
    specs = [
        {"provider": provider, "base_url": base_url, **deployment, **({"weight": weights[i]} if weights else {})}
        for i, base_url in enumerate(base_urls)
    ]
    return route_over(
        warden,
        provider,
        specs,
        model=model,
        send_models=[send_model] * len(specs),
        priorities=priorities,
        max_attempts=max_attempts,
        strategy=strategy,
    )


def route_over(
    warden: Any,
    provider: str,
    specs: list[dict[str, Any]],
    *,
    model: str | None = None,
    send_models: list[str | None] | None = None,
    priorities: list[int] | None = None,
    max_attempts: int = 3,
    strategy: str = "weighted",
) -> Alias:
    """Deployments as ``specs`` describe them (of any provider that can answer ``provider``'s clients) and an alias
    of ``provider`` over them in that order, each sent ``send_models[i]`` (None: the alias's name)."""
    tag = uuid.uuid4().hex[:8]
    names = [f"{spec['provider']}-{tag}-{i}" for i, spec in enumerate(specs)]
    for name, spec in zip(names, specs, strict=True):
        answer = httpx.put(f"{warden.url}/api/deployments/{name}", json=spec, timeout=10)
        assert answer.status_code == 201, answer.text
    model = model or f"routed-{tag}"
    targets = [
        {
            "deployment": name,
            "model": send_models[i] if send_models else None,
            "priority": priorities[i] if priorities else i,
        }
        for i, name in enumerate(names)
    ]
    answer = httpx.put(
        f"{warden.url}/api/model-aliases/{provider}/{model}",
        json={"targets": targets, "max_attempts": max_attempts, "strategy": strategy},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    return Alias(provider, model, names)


def metric(warden: Any, name: str, **labels: str) -> float:
    """The value of one series of ``/metrics`` (0 when absent)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in warden.metrics().splitlines():
        if line.startswith(name + "{"):
            series, _, value = line.rpartition(" ")
            found = ",".join(sorted(series[len(name) + 1 : -1].split(",")))
            if found == wanted:
                return float(value)
    return 0.0
