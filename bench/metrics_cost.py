"""What counting a request costs the ingress: prometheus_client's metrics as Warden keeps them (each process's in its
own memory, added up at scrape time) against prometheus_client's multiprocess mode (every value in an mmap file under
PROMETHEUS_MULTIPROC_DIR), per increment and per answered request (``IngressMetrics.observe``).

    .venv/bin/python bench/metrics_cost.py --seconds 1

Each mode runs in a process of its own: prometheus_client chooses its value class when it is imported. See
bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

REQUEST = {
    "provider": "openai",
    "model": "gpt-4o",
    "profile_id": "p",
    "agent_id": "a",
    "status": 200,
    "duration_s": 0.2,
    "ttft_s": 0.1,
    "input_tokens": 10,
    "output_tokens": 20,
    "cost_usd": 0.001,
}


def measure(seconds: float) -> dict[str, float]:
    """ns per call of each operation, the best of five runs of about ``seconds`` / 5 each (in this process's mode)."""
    sys.path.insert(0, str(ROOT))
    from prometheus_client import CollectorRegistry, Counter, Histogram

    from services.ingress.metrics import IngressMetrics

    registry = CollectorRegistry()
    counter = Counter("bench_total", "bench", ("a",), registry=registry).labels("v")
    histogram = Histogram("bench_seconds", "bench", ("a",), registry=registry).labels("v")
    metrics = IngressMetrics(registry, 100)
    operations = {
        "Counter.inc": counter.inc,
        "Histogram.observe": lambda: histogram.observe(0.2),
        "IngressMetrics.observe (one request)": lambda: metrics.observe(**REQUEST),
    }
    results = {}
    for name, call in operations.items():
        call()
        number = max(1, int(seconds / 5 / max(timeit.timeit(call, number=100) / 100, 1e-9)))
        results[name] = min(timeit.repeat(call, number=number, repeat=5)) / number * 1e9
    return results


def run_mode(multiprocess: bool, seconds: float) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    with tempfile.TemporaryDirectory(prefix="warden-bench-metrics-") as directory:
        if multiprocess:
            env["PROMETHEUS_MULTIPROC_DIR"] = directory
        out = subprocess.run(
            [sys.executable, __file__, "--measure", str(seconds)], env=env, check=True, capture_output=True, text=True
        ).stdout
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per operation and mode (default 1)")
    parser.add_argument("--measure", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure is not None:
        print(json.dumps(measure(args.measure)))
        return
    memory, mmap = run_mode(False, args.seconds), run_mode(True, args.seconds)
    print(f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'operation':40} {'in memory':>12} {'multiprocess':>14} {'ratio':>7}")
    for name in memory:
        print(f"{name:40} {memory[name]:9.0f} ns {mmap[name]:11.0f} ns {mmap[name] / memory[name]:6.1f}x")


if __name__ == "__main__":
    main()
