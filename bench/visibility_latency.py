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

A broker is started here unless WARDEN_KAFKA_BOOTSTRAP_SERVERS is set. The load generator is Python (threads on
httpx): on a small machine it competes with Warden for the CPU; the achieved rate is printed beside the asked one.

    python bench/visibility_latency.py --rate 200 --seconds 20 [--kafka]
    python bench/visibility_latency.py --distributed --rate 500 --seconds 20
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# bench/ is not a package: its scripts run as files and import their neighbour `common`.
from common import Process, free_port, wait_for_http

from tests.fakes.upstream import FakeUpstream

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
        env = {**env, "WARDEN_CLICKHOUSE_URL": url}
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
        self.lock = threading.Lock()

    def agent(self, n: int) -> str:
        return f"{self.prefix}-{n // self.per_agent}"

    def note_answer(self, agent: str, interaction_id: str) -> None:
        with self.lock:
            self.answered[interaction_id] = time.monotonic()
            if interaction_id not in self.seen:
                self.pending.setdefault(agent, set()).add(interaction_id)

    def poll(self, console: str, interval: float, stop: threading.Event) -> None:
        with httpx.Client(base_url=console, timeout=30) as client:
            while not stop.is_set():
                with self.lock:
                    agents = [agent for agent, ids in self.pending.items() if ids]
                for agent in agents:
                    began = time.monotonic()
                    response = client.get("/api/interactions", params={"agent_id": agent, "limit": 500})
                    now = time.monotonic()
                    self.api_times.append(now - began)
                    complete = {i["interaction_id"] for i in response.json()["items"] if i["status"] is not None}
                    with self.lock:
                        for interaction_id in complete - self.seen.keys():
                            self.seen[interaction_id] = now
                        self.pending[agent] -= complete
                stop.wait(interval)

    def delays(self) -> list[float]:
        return [self.seen[i] - t for i, t in self.answered.items() if i in self.seen]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200, help="requests per second, spread over the ingresses")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--poll", type=float, default=0.05, help="pause between the poller's rounds")
    parser.add_argument("--per-agent", type=int, default=200, help="requests per agent id (lists stay short)")
    parser.add_argument("--threads", type=int, default=16, help="client threads sending the load")
    parser.add_argument("--kafka", action="store_true", help="warden serve on a real Kafka broker")
    parser.add_argument("--distributed", action="store_true", help="each service its own process, ClickHouse server")
    parser.add_argument("--ingresses", type=int, default=2, help="--distributed: ingress processes")
    parser.add_argument("--no-guard", action="store_true", help="--distributed: without the guard process")
    args = parser.parse_args()

    env = {**os.environ, "WARDEN_HOST": "127.0.0.1", "WARDEN_LOG_LEVEL": "WARNING"}
    work = Path(tempfile.mkdtemp(prefix="warden-visibility-"))
    upstream = FakeUpstream("openai", record=False).start()
    env["WARDEN_OPENAI_BASE_URL"] = upstream.base_url
    visibility = Visibility(f"visibility-{uuid.uuid4().hex[:8]}", args.per_agent)
    stop = threading.Event()
    load_before = os.getloadavg()
    try:
        with contextlib.ExitStack() as stack:
            if args.kafka or args.distributed:
                env["WARDEN_KAFKA_BOOTSTRAP_SERVERS"] = stack.enter_context(kafka())
                subprocess.run(
                    [sys.executable, "-m", "warden.cli", "topics", "create"], env=env, check=True, capture_output=True
                )
            topology = distributed if args.distributed else embedded
            ingresses, console = stack.enter_context(topology(args, env, work))
            clients = [stack.enter_context(httpx.Client(base_url=url, timeout=30)) for url in ingresses]

            def call(n: int) -> None:
                agent = visibility.agent(n)
                try:
                    response = clients[n % len(clients)].post(
                        "/v1/openai/chat/completions",
                        headers={"Authorization": "Bearer sk-bench", "X-Archestra-Agent-Id": agent},
                        json={"model": "gpt-4o", "messages": [{"role": "user", "content": f"hello {n}"}]},
                    )
                except httpx.HTTPError:
                    visibility.failed += 1
                    return
                if response.status_code != 200:
                    visibility.failed += 1
                    return
                visibility.note_answer(agent, response.headers["x-warden-interaction-id"])

            poller = threading.Thread(target=visibility.poll, args=(console, args.poll, stop), daemon=True)
            poller.start()
            with ThreadPoolExecutor(args.threads) as pool:
                interval = 1.0 / args.rate
                start = time.monotonic()
                n = 0
                while time.monotonic() - start < args.seconds:
                    pool.submit(call, n)
                    n += 1
                    time.sleep(max(0.0, start + n * interval - time.monotonic()))
            # Over the time the answers came in: a client pool that falls behind answers later, not fewer.
            sent_s = max(visibility.answered.values(), default=start + args.seconds) - start
            settle = time.monotonic() + 60
            while len(visibility.seen) < len(visibility.answered) and time.monotonic() < settle:
                time.sleep(0.1)
            stop.set()
            poller.join()
    finally:
        upstream.stop()
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
    print(
        f"load average (1 min) before {load_before[0]:.1f}, after {load_after[0]:.1f} on {os.cpu_count()} CPUs; "
        f"target p99 < {TARGET_P99_S:.0f} s: {'ok' if percentile(delays, 0.99) < TARGET_P99_S else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
