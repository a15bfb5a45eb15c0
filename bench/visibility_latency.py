"""End to end: how long after a client receives its answer is the interaction visible in /api/interactions?

In one run, under a steady load (``--rate`` requests/s for ``--seconds``): each request's answer time is noted; a
poller reads ``/api/interactions?agent_id=…`` and notes when each interaction first shows complete. Prints p50/p99 of
the difference, and as the baseline from the same run the read API's own p50/p99 (the floor any visibility
measurement carries). Requests rotate through agent ids (``--per-agent`` each), so every list the poller reads stays
short whatever the rate, and the poller reads only the agents with interactions not seen yet, one after another
(``--poll`` seconds between rounds).

Modes:
- embedded (default): one ``warden serve``, in-process bus, chDB;
- ``--kafka``: the same process on a real Kafka broker;
- ``--distributed``: each service its own process, as deployed: ``--ingresses`` times ``warden ingress`` (the load is
  spread over them), ``warden logger``, ``warden guard`` (unless ``--no-guard``), ``warden console``, on Kafka and a
  ClickHouse server — the one at WARDEN_CLICKHOUSE_URL, else the chdb wheel's server started here (as the tests
  start it).

A broker is started here unless WARDEN_KAFKA_BOOTSTRAP_SERVERS is set. The upstream is nginx answering a canned chat
completion (the fake upstream in its own process where nginx is not installed). The load generator and the poller
share one asyncio loop on aiohttp: on a small machine they compete with Warden for the CPU, so the achieved rate is
printed beside the asked one, and every component's CPU per answered request beside the figures.

    python bench/visibility_latency.py --rate 200 --seconds 20 [--kafka]
    python bench/visibility_latency.py --distributed --rate 500 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# bench/ is not a package: its scripts run as files and import their neighbour `common`.
from common import NginxUpstream, Process, cpu_seconds, free_port, process_tree, wait_for_http

TARGET_P99_S = 3.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def warden(name: str, args: list[str], env: dict[str, str], work: Path) -> Process:
    return Process(name, [sys.executable, "-m", "warden.cli", *args], work / f"{name}.log", env)


@contextlib.contextmanager
def kafka() -> Iterator[str]:
    bootstrap = os.environ.get("WARDEN_KAFKA_BOOTSTRAP_SERVERS")
    if bootstrap:
        yield bootstrap
        return
    from tests.support.kafka_broker import KafkaBroker

    broker = KafkaBroker()
    broker.start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.close()


@contextlib.contextmanager
def clickhouse() -> Iterator[str]:
    url = os.environ.get("WARDEN_CLICKHOUSE_URL")
    if url:
        yield url
        return
    from tests.support.clickhouse_server import ClickHouseServer

    with ClickHouseServer() as server:
        yield server.url


@contextlib.contextmanager
def embedded(args: argparse.Namespace, env: dict[str, str], work: Path) -> Iterator[tuple[list[str], str]]:
    """``warden serve``: (ingress URLs, console URL)."""
    port = free_port()
    process = warden("serve", ["serve", "--port", str(port), "--data-dir", str(work / "data")], env, work)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", 60, "warden serve", process)
        yield [f"http://127.0.0.1:{port}"], f"http://127.0.0.1:{port}"
    finally:
        process.stop()


@contextlib.contextmanager
def distributed(args: argparse.Namespace, env: dict[str, str], work: Path) -> Iterator[tuple[list[str], str]]:
    """Each service its own process on Kafka and a ClickHouse server: (ingress URLs, console URL)."""
    with clickhouse() as url:
        env["WARDEN_CLICKHOUSE_URL"] = url  # main reads the server's counters through it
        subprocess.run([sys.executable, "-m", "warden.cli", "migrate"], env=env, check=True, capture_output=True)
        processes: list[Process] = []
        try:
            roles = ["logger"] + ([] if args.no_guard else ["guard"])
            for role in roles:
                port = free_port()
                processes.append(
                    warden(role, [role, "--data-dir", str(work / role), "--metrics-port", str(port)], env, work)
                )
                wait_for_http(f"http://127.0.0.1:{port}/metrics", 60, role, processes[-1])
            console = free_port()
            processes.append(
                warden("console", ["console", "--port", str(console), "--data-dir", str(work / "console")], env, work)
            )
            wait_for_http(f"http://127.0.0.1:{console}/healthz", 60, "console", processes[-1])
            ingresses = []
            for n in range(args.ingresses):
                port = free_port()
                name = f"ingress-{n}"
                processes.append(
                    warden(name, ["ingress", "--port", str(port), "--data-dir", str(work / name)], env, work)
                )
                wait_for_http(f"http://127.0.0.1:{port}/healthz", 60, name, processes[-1])
                ingresses.append(f"http://127.0.0.1:{port}")
            yield ingresses, f"http://127.0.0.1:{console}"
        finally:
            for process in reversed(processes):
                process.stop()


SERVER_EVENTS = {
    "SelectQuery": "selects",
    "InsertQuery": "inserts",
    "InsertedCompactParts": "parts written",
    "Merge": "merges",
    "OSCPUVirtualTimeMicroseconds": "query CPU s",
    "MergeTotalMilliseconds": "merge wall ms",
}
"""ClickHouse server counters (``system.events``) printed for the run: what the server's CPU went to."""


def server_events(url: str) -> dict[str, int]:
    sql = f"SELECT event, value FROM system.events WHERE event IN {tuple(SERVER_EVENTS)} FORMAT JSONCompact"
    rows = httpx.post(url, content=sql, timeout=10).json()["data"]
    return {event: int(value) for event, value in rows}


def component(cmdline: list[str]) -> str:
    """What a process under this benchmark is, from its command line (for the CPU table)."""
    if "warden.cli" in cmdline:
        role = cmdline[cmdline.index("warden.cli") + 1]
        return "warden serve" if role == "serve" else role
    joined = " ".join(cmdline)
    if "java" in cmdline[0] or "kafka" in joined:
        return "kafka broker"
    if "nginx" in cmdline[0]:
        return "upstream (nginx)"
    if "fakes.upstream" in joined:
        return "upstream (fake)"
    if "clickhouse" in joined or "chdb" in joined:
        return "clickhouse server"
    return "other"


def cpu_by_component(root: int) -> dict[str, float]:
    """CPU seconds so far of every process below ``root`` (not ``root`` itself), summed by ``component``."""
    totals: dict[str, float] = {}
    for pid in process_tree(root)[1:]:
        try:
            name = component(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0"))
            totals[name] = totals.get(name, 0.0) + cpu_seconds(pid)
        except OSError:
            continue
    return totals


@contextlib.contextmanager
def upstream(work: Path) -> Iterator[str]:
    """The provider the ingresses forward to, in its own process so it takes no CPU from the load generator: nginx
    answering a canned chat completion where nginx is installed, else the fake upstream's command line."""
    if shutil.which("nginx"):
        nginx = NginxUpstream(work, cpus=None)
        nginx.start()
        try:
            yield nginx.base_url
        finally:
            nginx.stop()
        return
    port = free_port()
    fake = Process(
        "upstream",
        [sys.executable, "-m", "tests.fakes.upstream", "--port", str(port)],
        work / "upstream.log",
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/", 30, "fake upstream", fake)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        fake.stop()


class Visibility:
    """Answer times noted by the load, first-seen times noted by the poller, per interaction id."""

    def __init__(self, prefix: str, per_agent: int) -> None:
        self.prefix = prefix
        self.per_agent = per_agent
        self.answered: dict[str, float] = {}
        self.seen: dict[str, float] = {}
        self.pending: dict[str, set[str]] = {}
        """Agents with answered interactions the poller has not seen complete yet."""
        self.api_times: list[float] = []
        self.failed = 0

    def agent(self, n: int) -> str:
        return f"{self.prefix}-{n // self.per_agent}"

    def note_answer(self, agent: str, interaction_id: str) -> None:
        self.answered[interaction_id] = time.monotonic()
        if interaction_id not in self.seen:
            self.pending.setdefault(agent, set()).add(interaction_id)

    async def poll(self, console: aiohttp.ClientSession, interval: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for agent in [agent for agent, ids in self.pending.items() if ids]:
                began = time.monotonic()
                async with console.get("/api/interactions", params={"agent_id": agent, "limit": 500}) as response:
                    items = (await response.json())["items"]
                now = time.monotonic()
                self.api_times.append(now - began)
                complete = {i["interaction_id"] for i in items if i["status"] is not None}
                for interaction_id in complete - self.seen.keys():
                    self.seen[interaction_id] = now
                self.pending[agent] -= complete
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    def delays(self) -> list[float]:
        return [self.seen[i] - t for i, t in self.answered.items() if i in self.seen]


async def run_load(args: argparse.Namespace, ingresses: list[str], console: str, visibility: Visibility) -> float:
    """Open-loop load at ``args.rate`` for ``args.seconds`` while the poller reads; waits (up to 60 s) until every
    answered interaction is seen. Returns the seconds over which the answers came in."""
    connector = aiohttp.TCPConnector(limit=args.connections)
    timeout = aiohttp.ClientTimeout(total=30)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
        aiohttp.ClientSession(base_url=console, timeout=timeout) as reader,
    ):
        stop = asyncio.Event()
        poller = asyncio.create_task(visibility.poll(reader, args.poll, stop))

        async def call(n: int) -> None:
            agent = visibility.agent(n)
            try:
                async with session.post(
                    f"{ingresses[n % len(ingresses)]}/v1/openai/chat/completions",
                    headers={"Authorization": "Bearer sk-bench", "X-Archestra-Agent-Id": agent},
                    json={"model": "gpt-4o", "messages": [{"role": "user", "content": f"hello {n}"}]},
                ) as response:
                    await response.read()
                    if response.status != 200:
                        visibility.failed += 1
                        return
                    visibility.note_answer(agent, response.headers["x-warden-interaction-id"])
            except (aiohttp.ClientError, TimeoutError):
                visibility.failed += 1

        calls: set[asyncio.Task[None]] = set()
        interval = 1.0 / args.rate
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < args.seconds:
            task = asyncio.create_task(call(n))
            calls.add(task)
            task.add_done_callback(calls.discard)
            n += 1
            await asyncio.sleep(max(0.0, start + n * interval - time.monotonic()))
        await asyncio.gather(*calls)
        # Over the time the answers came in: a load that falls behind answers later, not fewer.
        sent_s = max(visibility.answered.values(), default=start + args.seconds) - start
        settle = time.monotonic() + 60
        while len(visibility.seen) < len(visibility.answered) and time.monotonic() < settle:
            await asyncio.sleep(0.1)
        stop.set()
        await poller
    return sent_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200, help="requests per second, spread over the ingresses")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--poll", type=float, default=0.05, help="pause between the poller's rounds")
    parser.add_argument("--per-agent", type=int, default=200, help="requests per agent id (lists stay short)")
    parser.add_argument("--connections", type=int, default=64, help="client connections, over all ingresses")
    parser.add_argument("--kafka", action="store_true", help="warden serve on a real Kafka broker")
    parser.add_argument("--distributed", action="store_true", help="each service its own process, ClickHouse server")
    parser.add_argument("--ingresses", type=int, default=2, help="--distributed: ingress processes")
    parser.add_argument("--no-guard", action="store_true", help="--distributed: without the guard process")
    args = parser.parse_args()

    env = {**os.environ, "WARDEN_HOST": "127.0.0.1", "WARDEN_LOG_LEVEL": "WARNING"}
    work = Path(tempfile.mkdtemp(prefix="warden-visibility-"))
    visibility = Visibility(f"visibility-{uuid.uuid4().hex[:8]}", args.per_agent)
    load_before = os.getloadavg()
    with contextlib.ExitStack() as stack:
        env["WARDEN_OPENAI_BASE_URL"] = stack.enter_context(upstream(work))
        if args.kafka or args.distributed:
            env["WARDEN_KAFKA_BOOTSTRAP_SERVERS"] = stack.enter_context(kafka())
            subprocess.run(
                [sys.executable, "-m", "warden.cli", "topics", "create"], env=env, check=True, capture_output=True
            )
        topology = distributed if args.distributed else embedded
        ingresses, console = stack.enter_context(topology(args, env, work))
        server = env.get("WARDEN_CLICKHOUSE_URL") if args.distributed else None
        events_before = server_events(server) if server else {}
        cpu_before = cpu_by_component(os.getpid())
        own_before = time.process_time()
        sent_s = asyncio.run(run_load(args, ingresses, console, visibility))
        own_cpu = time.process_time() - own_before
        cpu_after = cpu_by_component(os.getpid())
        events = {k: v - events_before.get(k, 0) for k, v in server_events(server).items()} if server else {}
    load_after = os.getloadavg()
    delays = visibility.delays()
    missing = len(visibility.answered) - len(delays)
    mode = "distributed" if args.distributed else "kafka" if args.kafka else "embedded"
    achieved = len(visibility.answered) / sent_s
    print(
        f"mode={mode} ingresses={len(ingresses)} asked rate={args.rate:.0f}/s achieved={achieved:.0f}/s "
        f"answered={len(visibility.answered)} failed={visibility.failed} visible={len(delays)} missing={missing}"
    )
    if not delays:
        raise SystemExit("nothing became visible")
    print(f"{'':24}{'p50 ms':>10}{'p99 ms':>10}")
    print(f"{'visibility delay':24}{percentile(delays, 0.5) * 1e3:>10.0f}{percentile(delays, 0.99) * 1e3:>10.0f}")
    api = visibility.api_times
    print(f"{'read API (baseline)':24}{percentile(api, 0.5) * 1e3:>10.0f}{percentile(api, 0.99) * 1e3:>10.0f}")
    print(f"mean delay {statistics.mean(delays) * 1e3:.0f} ms; poll pause {args.poll * 1e3:.0f} ms")
    answered = max(1, len(visibility.answered))
    used = {name: cpu_after.get(name, 0.0) - cpu_before.get(name, 0.0) for name in cpu_after}
    used["load generator and poller (this process)"] = own_cpu
    print(f"CPU while loading and until visible, ms per answered request (of {os.cpu_count()} CPUs):")
    for name, seconds in sorted(used.items(), key=lambda item: -item[1]):
        print(f"  {name:44}{seconds * 1e3 / answered:>8.2f}")
    print(f"  {'total':44}{sum(used.values()) * 1e3 / answered:>8.2f}")
    if events:
        counted = ", ".join(
            f"{label} {events.get(event, 0) // (1_000_000 if 'CPU' in label else 1)}"
            for event, label in SERVER_EVENTS.items()
        )
        print(f"ClickHouse server over the same time: {counted}")
    print(
        f"load average (1 min) before {load_before[0]:.1f}, after {load_after[0]:.1f} on {os.cpu_count()} CPUs; "
        f"target p99 < {TARGET_P99_S:.0f} s: {'ok' if percentile(delays, 0.99) < TARGET_P99_S else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
