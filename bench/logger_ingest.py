"""Logger ingest: interactions/s from Kafka into chDB for one `warden logger` process, per batch size.

In one run: starts (or uses) a Kafka broker, pre-loads N interactions (a request and a response event each) into
fresh topics, then for each batch size starts a `warden logger` on an empty chDB directory and times how long it
takes to store them all (consumer lag back to 0 and every row present). The baseline, measured in the same run, is
chDB alone inserting the same rows in the same batch size with no Kafka, decoding or network in between: the ratio
says what the logger's consuming costs on top of the storage engine. The logger's CPU time per interaction is printed
too (all its threads: decoding and building rows on the event loop, chDB inserting on the other, and chDB's merges of
the parts written, up to when they stop): on a shared machine it varies less than the rate, and the load average says
how shared the machine was.

    python bench/logger_ingest.py --interactions 200000 --batches 5000,20000,50000 [--repeat 2] [--server]

With ``--server`` each batch size is also run into a ClickHouse server (WARDEN_CLICKHOUSE_URL, else the chdb wheel's
server started here, as the tests start it), beside chDB in the same run: the logger writing to it, and the server
alone (the same rows inserted over HTTP). Its database is dropped before each run, so every run starts from empty
tables too. The CPU per interaction then adds the server's own (its process, up to when its merges stop) to the
logger's.

Set WARDEN_KAFKA_BOOTSTRAP_SERVERS to use a running broker instead of starting one (its llm.* topics then also hold
what earlier runs loaded; each run times the first N interactions its logger stores).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plumbing.bus.kafka import KafkaBus
from plumbing.bus.topics_admin import create_topics
from plumbing.store.base import Store
from plumbing.store.chdb_store import ChdbStore
from plumbing.store.migrations import migrate
from plumbing.store.server_store import ServerStore
from schemas import topics
from services.logger.rows import interaction_rows
from tests.distributed.events import interaction


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def metric(url: str, name: str) -> float:
    text = httpx.get(url, timeout=5).text
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


async def preload(bootstrap: str, count: int, agent: str, spool: Path) -> float:
    bus = KafkaBus(
        bootstrap,
        client_id="bench-producer",
        spool_dir=spool,
        registry=CollectorRegistry(),
        buffer_max_bytes=2**34,
    )
    await bus.start()
    began = time.perf_counter()
    for n in range(count):
        request, response = interaction(agent, n)
        bus.publish(topics.REQUESTS, request.interaction_id, request)
        bus.publish(topics.RESPONSES, response.interaction_id, response)
    await bus.stop(timeout=600)
    return time.perf_counter() - began


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settled_cpu_seconds(pid: int, timeout: float = 30.0) -> float:
    """CPU time once the process is idle again: chDB merges the parts a run wrote in the background, after its last
    insert, and that work is part of what storing them cost."""
    deadline = time.monotonic() + timeout
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(1)
        now = cpu_seconds(pid)
        if now - last < 0.05:
            return now
        last = now
    return last


def run_logger(
    bootstrap: str, data_dir: Path, batch: int, expected_events: int, server: Any = None
) -> tuple[float, float]:
    """(interactions/s from its first stored event to its last, the logger's CPU µs per interaction including the
    merges that follow; with a ``server``, the logger writes to it and the server's CPU counts too)."""
    port = free_port()
    env = {
        **os.environ,
        "WARDEN_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "WARDEN_LOGGER_MAX_BATCH": str(batch),
        "WARDEN_LOG_LEVEL": "WARNING",
    }
    # A fresh consumer group per run, so every run reads the whole pre-loaded topic.
    env["WARDEN_LOGGER_GROUP"] = f"bench-{uuid.uuid4().hex[:8]}"
    if server is not None:
        server.query("DROP DATABASE IF EXISTS warden SYNC")
        env["WARDEN_CLICKHOUSE_URL"] = server.url
    proc = subprocess.Popen(
        [sys.executable, "-m", "warden.cli", "logger", "--data-dir", str(data_dir), "--metrics-port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    pids = [proc.pid] + ([server.pid] if server is not None and server.pid else [])
    try:
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        began, first, cpu = None, 0.0, 0.0
        while True:
            events = metric(url, "warden_logger_events_total")
            if began is None and events > 0:
                began, first, cpu = time.perf_counter(), events, sum(cpu_seconds(pid) for pid in pids)
            if events >= expected_events:
                elapsed = time.perf_counter() - began
                interactions = (events - first) / 2
                settled = sum(settled_cpu_seconds(pid) for pid in pids)
                return interactions / elapsed, (settled - cpu) * 1e6 / interactions
            time.sleep(0.02)
    finally:
        proc.terminate()
        proc.wait(60)


async def baseline(data_dir: Path, count: int, batch: int, server: Any = None) -> float:
    """The store alone inserting the same rows in the same batch size: chDB in ``data_dir``, or the ``server``."""
    store: Store
    if server is not None:
        server.query("DROP DATABASE IF EXISTS warden SYNC")
        store = ServerStore(server.url)
    else:
        store = ChdbStore(data_dir)
    await migrate(store)
    events = [e for n in range(count) for e in interaction("baseline", n)]
    rows = interaction_rows(events)
    began = time.perf_counter()
    for start in range(0, len(rows), batch // 2):
        await store.insert("warden.interactions", rows[start : start + batch // 2])
    elapsed = time.perf_counter() - began
    await store.close()
    return count / elapsed


class ExternalServer:
    """A running server at WARDEN_CLICKHOUSE_URL, queried like the ``ClickHouseServer`` the tests start; its CPU is
    not this machine's to count."""

    pid = None

    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, sql: str) -> str:
        parts = urlsplit(self.url)
        endpoint = f"{parts.scheme}://{parts.hostname}:{parts.port or 8123}/"
        auth = (unquote(parts.username or "default"), unquote(parts.password or ""))
        return httpx.post(endpoint, content=sql, auth=auth, timeout=120).raise_for_status().text


def start_server(stack: ExitStack) -> Any:
    url = os.environ.get("WARDEN_CLICKHOUSE_URL")
    if url:
        return ExternalServer(url)
    from tests.support.clickhouse_server import ClickHouseServer

    return stack.enter_context(ClickHouseServer())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interactions", type=int, default=200_000)
    parser.add_argument("--batches", default="5000,20000,50000")
    parser.add_argument("--repeat", type=int, default=1, help="runs per batch size (the machine may be shared)")
    parser.add_argument("--server", action="store_true", help="also into a ClickHouse server, beside chDB")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]

    broker = None
    bootstrap = os.environ.get("WARDEN_KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        from tests.support.kafka_broker import KafkaBroker

        broker = KafkaBroker()
        broker.start()
        bootstrap = broker.bootstrap_servers
    work = Path(tempfile.mkdtemp(prefix="warden-bench-"))
    try:
        with ExitStack() as stack:
            server = start_server(stack) if args.server else None
            asyncio.run(create_topics(bootstrap, partitions=6))
            agent = f"bench-{uuid.uuid4().hex[:8]}"
            produce_s = asyncio.run(preload(bootstrap, args.interactions, agent, work / "spool"))
            print(f"pre-loaded {args.interactions} interactions ({2 * args.interactions} events) in {produce_s:.1f}s")
            print(
                f"{'store':>7} {'batch':>8} {'logger interactions/s':>22} {'logger CPU µs/interaction':>26}"
                f" {'store alone interactions/s':>27} {'ratio':>6} {'load avg':>9}"
            )
            stores = [("chDB", None)] + ([("server", server)] if server is not None else [])
            for batch in batches:
                for _ in range(args.repeat):
                    for name, target in stores:
                        logger_rate, cpu = run_logger(bootstrap, work / "logger", batch, 2 * args.interactions, target)
                        base_rate = asyncio.run(
                            baseline(work / "baseline", min(args.interactions, 100_000), batch, target)
                        )
                        for used in ("logger", "baseline"):  # every run starts from an empty table
                            shutil.rmtree(work / used, ignore_errors=True)
                        print(
                            f"{name:>7} {batch:>8} {logger_rate:>22,.0f} {cpu:>26,.0f} {base_rate:>27,.0f}"
                            f" {logger_rate / base_rate:>6.2f} {os.getloadavg()[0]:>9.1f}",
                            flush=True,
                        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if broker is not None:
            broker.close()


if __name__ == "__main__":
    main()
