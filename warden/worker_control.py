"""What ``warden serve``'s background process asks of the proxy processes, over each one's private unix socket.

- ``/metrics`` covers every process: each proxy process answers its own registry (``control_app``); the background
  process, which answers ``/metrics``, collects them when it is scraped and adds them up series by series
  (counters, histograms and gauges such as requests in flight all sum; ``_created`` timestamps are left out). A
  proxy process that does not answer within ``timeout_s`` is left out of that scrape, and counted in
  ``warden_serve_workers_unscraped``.
- A change made through the admin API is seen by every proxy before the API answers (``RefreshAfterWrites``): the
  background asks each one to read the shared maps again (``/refresh``). Changes made otherwise (the guard's
  quarantines, another process's provider history, ``warden profiles`` on the command line) reach them through the
  maps' own following, within ``FOLLOW_INTERVAL_S``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SOCKET_GLOB = "worker-*.sock"


def control_app(registry: CollectorRegistry, refresh: Callable[[], Awaitable[None]]) -> ASGIApp:
    """A proxy process's private app: its registry, and reading the shared maps again now."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b"ok"
        if scope["path"] == "/metrics":
            body = generate_latest(registry)
        elif scope["path"] == "/refresh":
            await refresh()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": body})

    return app


def _sockets(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob(SOCKET_GLOB))


class RefreshAfterWrites:
    """The background's console: a request that may change the maps (any method but GET/HEAD) answers only once
    every proxy process has read them again (one that does not answer within ``timeout_s`` is left to its own
    following)."""

    def __init__(self, app: ASGIApp, run_dir: Path, timeout_s: float = 1.0) -> None:
        self.app = app
        self.run_dir = run_dir
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        await asyncio.gather(*(self._refresh(path) for path in _sockets(self.run_dir)))
        for message in held:
            await send(message)

    async def _refresh(self, path: Path) -> None:
        transport = httpx.AsyncHTTPTransport(uds=str(path))
        try:
            async with httpx.AsyncClient(transport=transport, timeout=self.timeout_s) as client:
                await client.post("http://worker/refresh")
        except httpx.HTTPError:
            pass


def merge(texts: Iterable[str]) -> list[Metric]:
    """Families of the same name from several expositions, their samples with equal labels added up."""
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            if family.name.endswith("_created"):
                continue  # optional in the text format, and no sum of start times means anything
            merged = families.setdefault(family.name, Metric(family.name, family.documentation, family.type))
            series = values.setdefault(family.name, {})
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if not sample.name.endswith("_created"):
                    series[key] = series.get(key, 0.0) + sample.value
            merged.samples = []
    for name, merged in families.items():
        for (sample_name, labels), value in values[name].items():
            merged.add_sample(sample_name, dict(labels), value)
    return list(families.values())


class WorkerMetrics(Collector):
    def __init__(self, run_dir: Path, timeout_s: float = 1.0) -> None:
        self.run_dir = run_dir
        self.timeout_s = timeout_s

    def collect(self) -> Iterator[Metric]:
        texts: list[str] = []
        missed = 0
        for path in _sockets(self.run_dir):
            try:
                with httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), timeout=self.timeout_s) as client:
                    texts.append(client.get("http://worker/metrics").text)
            except httpx.HTTPError:
                missed += 1
        yield from merge(texts)
        unscraped = GaugeMetricFamily(
            "warden_serve_workers_unscraped", "Proxy processes whose metrics did not answer in this scrape"
        )
        unscraped.add_metric([], missed)
        yield unscraped
