"""Logger ingest: interactions/s from Kafka into chDB for one `warden logger` process, per batch size.

In one run: starts (or uses) a Kafka broker, pre-loads N interactions (a request and a response event each) into
fresh topics, then for each batch size starts a `warden logger` on an empty chDB directory and times how long it
takes to store them all (consumer lag back to 0 and every row present). The baseline, measured in the same run, is
chDB alone inserting the same rows in the same batch size with no Kafka, decoding or network in between: the ratio
says what the logger's consuming costs on top of the storage engine. The logger's CPU time per interaction is printed
too (all its threads: decoding and building rows on the event loop, chDB inserting on the other, and chDB's merges of
the parts written, up to when they stop): on a shared machine it varies less than the rate, and the load average says
how shared the machine was.

    python bench/logger_ingest.py --interactions 200000 --batches 5000,20000,50000 [--repeat 2]

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
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plumbing.bus.kafka import KafkaBus
from plumbing.bus.topics_admin import create_topics
from plumbing.store.chdb_store import ChdbStore
from plumbing.store.migrations import migrate
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
        hard_limit=10**7,
    )
    await bus.start()
    began = time.perf_counter()
    for n in range(count):
        request, response = interaction(agent, n)
        bus.publish("llm.requests", request.interaction_id, request)
        bus.publish("llm.responses", response.interaction_id, response)
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


def run_logger(bootstrap: str, data_dir: Path, batch: int, expected_events: int) -> tuple[float, float]:
    """(interactions/s from its first stored event to its last, the logger's CPU µs per interaction including the
    merges that follow)."""
    port = free_port()
    env = {
        **os.environ,
        "WARDEN_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "WARDEN_LOGGER_MAX_BATCH": str(batch),
        "WARDEN_LOG_LEVEL": "WARNING",
    }
    # A fresh consumer group per run, so every run reads the whole pre-loaded topic.
    env["WARDEN_LOGGER_GROUP"] = f"bench-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "warden.cli", "logger", "--data-dir", str(data_dir), "--metrics-port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/metrics"
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
                began, first, cpu = time.perf_counter(), events, cpu_seconds(proc.pid)
            if events >= expected_events:
                elapsed = time.perf_counter() - began
                interactions = (events - first) / 2
                return interactions / elapsed, (settled_cpu_seconds(proc.pid) - cpu) * 1e6 / interactions
            time.sleep(0.02)
    finally:
        proc.terminate()
        proc.wait(60)


async def baseline(data_dir: Path, count: int, batch: int) -> float:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interactions", type=int, default=200_000)
    parser.add_argument("--batches", default="5000,20000,50000")
    parser.add_argument("--repeat", type=int, default=1, help="runs per batch size (the machine may be shared)")
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
        asyncio.run(create_topics(bootstrap, partitions=6))
        agent = f"bench-{uuid.uuid4().hex[:8]}"
        produce_s = asyncio.run(preload(bootstrap, args.interactions, agent, work / "spool"))
        print(f"pre-loaded {args.interactions} interactions ({2 * args.interactions} events) in {produce_s:.1f}s")
        print(
            f"{'batch':>8} {'logger interactions/s':>22} {'logger CPU µs/interaction':>26}"
            f" {'chDB alone interactions/s':>26} {'ratio':>6} {'load avg':>9}"
        )
        for batch in batches:
            for _ in range(args.repeat):
                logger_rate, cpu = run_logger(bootstrap, work / "logger", batch, 2 * args.interactions)
                base_rate = asyncio.run(baseline(work / "baseline", min(args.interactions, 100_000), batch))
                for used in ("logger", "baseline"):  # every run starts from an empty table
                    shutil.rmtree(work / used, ignore_errors=True)
                print(
                    f"{batch:>8} {logger_rate:>22,.0f} {cpu:>26,.0f} {base_rate:>26,.0f}"
                    f" {logger_rate / base_rate:>6.2f} {os.getloadavg()[0]:>9.1f}",
                    flush=True,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if broker is not None:
            broker.close()


if __name__ == "__main__":
    main()
