"""What a process asks of its sibling proxy processes (``warden serve``'s workers, ``warden ingress --workers N``'s),
over each one's private unix socket in a directory of the run (mode 0700).

- ``/metrics`` covers every process: each proxy process answers its own registry (``control_app``); the process that
  answers ``/metrics`` (``warden serve``'s background, or whichever ingress worker took the scrape) collects them
  when it is scraped and adds them up series by series (counters, histograms and gauges such as requests in flight
  all sum; ``_created`` timestamps are left out). Each worker keeps its figures in its own memory, so counting costs
  the request path nothing more than a single process's counters; the work is done at scrape time, every process
  asked at once. A proxy process that does not answer within ``timeout_s`` is left out of that scrape, and counted
  in a gauge (``warden_serve_workers_unscraped``, ``warden_ingress_workers_unscraped``).
- A change made through the admin API is seen by every proxy before the API answers (``RefreshAfterWrites``): the
  background asks each one to read the shared maps again (``/refresh``). Changes made otherwise (the guard's
  quarantines, another process's provider history, ``warden profiles`` on the command line) reach them through the
  maps' own following, within ``FOLLOW_INTERVAL_S``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from warden.serving import Server

SOCKET_GLOB = "worker-*.sock"


def worker_socket(run_dir: Path, index: int) -> Path:
    """Where proxy process ``index`` answers its siblings."""
    return run_dir / f"worker-{index}.sock"


def unix_listener(path: Path) -> socket.socket:
    path.unlink(missing_ok=True)  # left by a process of the same index that was killed
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def beside(
    control: Server, listener: socket.socket, main: Callable[[], Awaitable[None]]
) -> Callable[[], Awaitable[None]]:
    """The ``wait`` of a proxy process: ``main`` (its public server), with ``control`` answering on ``listener`` until
    ``main`` returns."""

    async def serve() -> None:
        task = asyncio.get_running_loop().create_task(control.serve(sockets=[listener]))
        try:
            await main()
        finally:
            control.should_exit = True
            await task

    return serve


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
        headers = [(b"content-type", b"text/plain"), (PROCESS_HEADER, process_id())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


PROCESS_HEADER = b"x-warden-process"
"""Which process answered a sibling's scrape: a new one at the same socket (a worker started again) starts its
counters from zero, and the collector then carries what the one before had counted."""
_process: tuple[int, bytes] | None = None


def process_id() -> bytes:
    """This process, told apart from any other that had or will have its pid."""
    global _process
    if _process is None or _process[0] != os.getpid():  # a forked child is another process
        _process = (os.getpid(), f"{os.getpid()}-{time.time_ns()}".encode())
    return _process[1]


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


STATE_FAMILIES = frozenset({"llm_upstream_breaker_state"})
"""Gauges that show a state, not an amount: merged as the highest any process shows (a breaker open in one worker
reads open), where every other family is added up."""


def merge(texts: Iterable[str]) -> list[Metric]:
    """Families of the same name from several expositions, their samples with equal labels added up (the highest
    of them for ``STATE_FAMILIES``)."""
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
                if sample.name.endswith("_created"):
                    continue
                seen = series.get(key)
                if seen is None:
                    series[key] = sample.value
                elif family.name in STATE_FAMILIES:
                    series[key] = max(seen, sample.value)
                else:
                    series[key] = seen + sample.value
            merged.samples = []
    for name, merged in families.items():
        for (sample_name, labels), value in values[name].items():
            merged.add_sample(sample_name, dict(labels), value)
    return list(families.values())


Series = tuple[str, tuple[tuple[str, str], ...]]
"""A sample's name and its labels, sorted."""
_COUNTING = frozenset({"counter", "histogram", "summary"})
"""Families whose samples only grow while their process lives (``_bucket``, ``_count``, ``_sum``, ``_total``)."""


def counted(text: str) -> dict[str, dict[Series, float]]:
    """The samples of ``text``'s counting families, by family."""
    out: dict[str, dict[Series, float]] = {}
    for family in text_string_to_metric_families(text):
        if family.type not in _COUNTING or family.name.endswith("_created"):
            continue
        out[family.name] = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for sample in family.samples
            if not sample.name.endswith("_created")
        }
    return out


class WorkerMetrics(Collector):
    """Every proxy process's metrics, added up. ``own``: the registry of the process that collects, when it is one of
    them (its socket ``own_socket`` is then skipped: it would wait for its own answer). ``unscraped``: the name of the
    gauge of processes that did not answer.

    The sums of counters, histograms and summaries never go down while this collector lives: a process that does
    not answer a scrape counts with what it answered last, and when a process is replaced (a worker started again
    after a crash, its counters from zero) what the one before had answered last is carried on. Prometheus reads a
    drop as a reset and would count the whole sum again. What a process counted after its last scrape and before
    it ended is lost. In ``warden ingress --workers N`` whichever worker takes the scrape collects, each with what
    it has seen: there, a worker started again can still show as a reset."""

    def __init__(
        self,
        run_dir: Path,
        timeout_s: float = 1.0,
        *,
        own: CollectorRegistry | None = None,
        own_socket: Path | None = None,
        unscraped: str = "warden_serve_workers_unscraped",
    ) -> None:
        self.run_dir = run_dir
        self.timeout_s = timeout_s
        self.own = own
        self.own_socket = own_socket
        self.unscraped = unscraped
        self._last: dict[Path, tuple[bytes, str]] = {}
        """Per socket, the process that answered last and its answer."""
        self._carried: dict[str, dict[Series, float]] = {}
        """What replaced processes had counted, by family."""
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        texts: list[str] = [] if self.own is None else [generate_latest(self.own).decode()]
        paths = [path for path in _sockets(self.run_dir) if path != self.own_socket]
        # Asked all at once: a scrape waits for the slowest process, not for the sum of them.
        with ThreadPoolExecutor(max_workers=max(len(paths), 1), thread_name_prefix="metrics-scrape") as pool:
            answers = list(pool.map(self._scrape, paths))
        missed = answers.count(None)
        with self._lock:  # two scrapes at once must not carry one process twice
            added = {name: dict(series) for name, series in self._carried.items()}
            for path, answer in zip(paths, answers, strict=True):
                last = self._last.get(path)
                if answer is None:
                    if last is not None:  # not answering (busy, frozen): its last counts, not none (gauges left out)
                        _add(added, counted(last[1]))
                    continue
                if last is not None and last[0] != answer[0]:
                    replaced = counted(last[1])
                    _add(self._carried, replaced)
                    _add(added, replaced)
                self._last[path] = answer
                texts.append(answer[1])
        yield from _plus(merge(texts), added)
        unscraped = GaugeMetricFamily(self.unscraped, "Proxy processes whose metrics did not answer in this scrape")
        unscraped.add_metric([], missed)
        yield unscraped

    def _scrape(self, path: Path) -> tuple[bytes, str] | None:
        """Which process answered and its metrics as text; None when none answered within the timeout."""
        try:
            with httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), timeout=self.timeout_s) as client:
                reply = client.get("http://worker/metrics")
        except httpx.HTTPError:
            return None
        return reply.headers.get(PROCESS_HEADER.decode(), "").encode(), reply.text


def _add(into: dict[str, dict[Series, float]], counts: dict[str, dict[Series, float]]) -> None:
    for name, series in counts.items():
        family = into.setdefault(name, {})
        for key, value in series.items():
            family[key] = family.get(key, 0.0) + value


def _plus(families: list[Metric], carried: dict[str, dict[Series, float]]) -> list[Metric]:
    """``families`` with ``carried`` counts added, series by series (a series only they have, too)."""
    if not carried:
        return families
    by_name = {family.name: family for family in families}
    for name, series in carried.items():
        family = by_name.get(name)
        if family is None:
            continue  # a family no process has any more: nobody can read it as a reset
        current = {(sample.name, tuple(sorted(sample.labels.items()))): sample for sample in family.samples}
        family.samples = [sample._replace(value=sample.value + series.get(key, 0.0)) for key, sample in current.items()]
        for key, value in series.items():
            if key not in current:
                family.add_sample(key[0], dict(key[1]), value)
    return families
