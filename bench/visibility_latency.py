"""End to end: how long after a client receives its answer is the interaction visible in /api/interactions?

In one run, under a steady load (``--rate`` requests/s for ``--seconds``): each request's answer time is noted; a
poller reads ``/api/interactions?agent_id=…`` every ``--poll`` seconds and notes when each interaction first shows
complete. Prints p50/p99 of the difference, and as the baseline from the same run the read API's own p50/p99 (the
floor any visibility measurement carries). Modes: the embedded default (in-process bus), or ``--kafka``: the same
process on a real Kafka broker (started here unless WARDEN_KAFKA_BOOTSTRAP_SERVERS is set).

    python bench/visibility_latency.py --rate 200 --seconds 20 [--kafka]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.upstream import FakeUpstream
from tests.support.warden_server import free_port


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--poll", type=float, default=0.05)
    parser.add_argument("--kafka", action="store_true")
    args = parser.parse_args()

    broker = None
    env = {**os.environ, "WARDEN_HOST": "127.0.0.1", "WARDEN_LOG_LEVEL": "WARNING"}
    if args.kafka:
        bootstrap = os.environ.get("WARDEN_KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            from tests.support.kafka_broker import KafkaBroker

            broker = KafkaBroker()
            broker.start()
            bootstrap = broker.bootstrap_servers
        env["WARDEN_KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
        subprocess.run(
            [sys.executable, "-m", "warden.cli", "topics", "create"], env=env, check=True, capture_output=True
        )
    upstream = FakeUpstream("openai", record=False).start()
    env["WARDEN_OPENAI_BASE_URL"] = upstream.base_url
    port = free_port()
    data = tempfile.mkdtemp(prefix="warden-visibility-")
    warden = subprocess.Popen(
        [sys.executable, "-m", "warden.cli", "serve", "--port", str(port), "--data-dir", data],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    agent = f"visibility-{uuid.uuid4().hex[:8]}"
    answered: dict[str, float] = {}
    seen: dict[str, float] = {}
    api_times: list[float] = []
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("warden serve did not start")
            time.sleep(0.1)

        def poll() -> None:
            with httpx.Client(base_url=base, timeout=10) as client:
                while not stop.is_set():
                    began = time.monotonic()
                    items = client.get("/api/interactions", params={"agent_id": agent, "limit": 500}).json()["items"]
                    now = time.monotonic()
                    api_times.append(now - began)
                    for item in items:
                        if item["status"] is not None and item["interaction_id"] not in seen:
                            seen[item["interaction_id"]] = now
                    stop.wait(args.poll)

        def call(client: httpx.Client) -> None:
            response = client.post(
                "/v1/openai/chat/completions",
                headers={"Authorization": "Bearer sk-bench", "X-Archestra-Agent-Id": agent},
                json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]},
            )
            answered[response.headers["x-warden-interaction-id"]] = time.monotonic()

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        with httpx.Client(base_url=base, timeout=30) as client, ThreadPoolExecutor(8) as pool:
            interval = 1.0 / args.rate
            start = time.monotonic()
            n = 0
            while time.monotonic() - start < args.seconds:
                pool.submit(call, client)
                n += 1
                time.sleep(max(0.0, start + n * interval - time.monotonic()))
        settle = time.monotonic() + 30
        while len(seen) < len(answered) and time.monotonic() < settle:
            time.sleep(0.1)
        stop.set()
        poller.join()
    finally:
        warden.terminate()
        warden.wait(60)
        upstream.stop()
        if broker is not None:
            broker.close()
    delays = [seen[i] - t for i, t in answered.items() if i in seen]
    missing = len(answered) - len(delays)
    mode = "kafka" if args.kafka else "embedded"
    print(f"mode={mode} requests={len(answered)} rate={args.rate}/s visible={len(delays)} missing={missing}")
    print(f"{'':24}{'p50 ms':>10}{'p99 ms':>10}")
    print(f"{'visibility delay':24}{percentile(delays, 0.5) * 1e3:>10.0f}{percentile(delays, 0.99) * 1e3:>10.0f}")
    print(
        f"{'read API (baseline)':24}{percentile(api_times, 0.5) * 1e3:>10.0f}{percentile(api_times, 0.99) * 1e3:>10.0f}"
    )
    print(f"mean delay {statistics.mean(delays) * 1e3:.0f} ms; poll interval {args.poll * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
