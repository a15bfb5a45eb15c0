"""What tracing adds to the proxy's own CPU per request, measured inside one process in CPU time: the ingress exactly
as a proxy process of ``warden serve`` composes it (``warden.composition.ingress`` over a hand-off bus writing its log,
with its writer thread), driven through its ASGI entry point by concurrent clients in the same event loop, forwarding
to nginx (another process, pinned apart) answering a canned chat completion.

    .venv/bin/python bench/trace_ingress_cost.py [--requests 1000] [--batches 12] [--concurrency 16]
        [--traceparent] [--source NAME=DIR ...]

The process alternates batches of ``--requests`` with tracing off and on, the one difference being the ingress's
trace starter (``TraceStarter(None)`` against ``TraceStarter(Sampling.from_env())``, which is all the
``OTEL_*`` variables change in a proxy process: it exports nothing itself). The CPU time of each batch
(``time.process_time``: the event loop and the hand-off's writer thread, which is waited for at the end of each batch)
divided by its requests; the table gives, per source tree, the median over the batches of off, of traced and of
traced minus the off batch before it. Pairing the batches inside one process is what makes the difference readable on
a busy machine: other load, the caches and the collector's state weigh on both sides of each pair alike.
``--source NAME=DIR`` measures another source tree the same way (e.g. ``git archive`` of an older revision), in a
process of its own. nginx's CPU is not counted; the server protocol (uvicorn) is left out on both sides.

``--callgrind`` counts instructions instead (the process runs under ``valgrind --tool=callgrind``, instrumented from
the end of the warm-up, its counters dumped after each batch through callgrind's client requests, from a helper
compiled with ``gcc`` against ``valgrind/callgrind.h``): no other load on the machine changes the count, so a busy
machine still gives the same figures; caches and the interpreter's memory traffic are not in them. Some 50 times
slower: use a few batches of a few hundred requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BODY = json.dumps(
    {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a concise assistant. Answer in one or two sentences."},
            {"role": "user", "content": "What is the capital of France, and why has it been important historically?"},
        ],
        "temperature": 0.2,
        "max_tokens": 128,
    },
    separators=(",", ":"),
).encode()
HEADERS = [
    (b"host", b"127.0.0.1:9000"),
    (b"user-agent", b"bench"),
    (b"content-type", b"application/json"),
    (b"authorization", b"Bearer sk-bench-not-a-real-key"),
    (b"x-archestra-agent-id", b"bench-agent"),
    (b"x-archestra-user-id", b"bench-user"),
    (b"x-bench-reply", b"chat"),
    (b"content-length", str(len(BODY)).encode()),
]
TRACEPARENT = (b"traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
WARMUP = 300
CALLGRIND_HELPER = """
#include <valgrind/callgrind.h>
void bench_start(void) { CALLGRIND_START_INSTRUMENTATION; CALLGRIND_ZERO_STATS; }
void bench_dump(const char *name) { CALLGRIND_DUMP_STATS_AT(name); }
"""
"""Callgrind's client requests are instruction sequences a C compiler emits from its header's macros."""
CALLGRIND_ENV = "TRACE_BENCH_CALLGRIND_HELPER"


async def _drive(requests: int, batches: int, concurrency: int, traceparent: bool) -> dict[str, Any]:
    from prometheus_client import CollectorRegistry

    from plumbing.bus.handoff import HandoffBus
    from plumbing.tracing import Sampling
    from services.ingress.tracecontext import TraceStarter
    from warden import composition
    from warden.composition import Lifecycle
    from warden.config_maps import ConfigMaps
    from warden.embedded import ServeSettings

    settings = ServeSettings()
    registry = CollectorRegistry()
    bus = HandoffBus.from_settings(settings.data_dir / "handoff", registry, settings)
    config = ConfigMaps.build(settings, history=True, keys=True)
    counters = composition.counters(settings, shared=False)
    ingress = composition.ingress(settings, bus, config, registry, counters=counters)
    starters = {"off": TraceStarter(None), "traced": TraceStarter(Sampling.from_env())}
    lifecycle = Lifecycle(bus=bus, config=config, ingress=ingress)
    await lifecycle.start()
    headers = HEADERS + ([TRACEPARENT] if traceparent else [])
    statuses: dict[str, int] = {}

    async def one() -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/openai/chat/completions",
            "raw_path": b"/v1/openai/chat/completions",
            "query_string": b"",
            "root_path": "",
            "headers": list(headers),
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 9000),
        }
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": BODY, "more_body": False}
            await asyncio.Event().wait()  # the client stays until the answer is complete
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses[str(message["status"])] = statuses.get(str(message["status"]), 0) + 1

        await ingress(scope, receive, send)

    async def batch(count: int) -> float:
        """CPU seconds of ``count`` requests, and of writing their events to the hand-off log."""
        started = time.process_time()

        async def client(n: int) -> None:
            for _ in range(n):
                await one()

        share, extra = divmod(count, concurrency)
        await asyncio.gather(*(client(share + (1 if i < extra else 0)) for i in range(concurrency)))
        while bus.pending():
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.02)  # the writer thread finishes the write it took the last events for
        return time.process_time() - started

    callgrind = _callgrind_helper()
    cpu: dict[str, list[float]] = {name: [] for name in starters}
    for starter in starters.values():  # warm both paths
        ingress.traces = starter
        await batch(WARMUP)
    if callgrind is not None:
        callgrind.bench_start()
    for number in range(batches):
        for name, starter in starters.items():
            ingress.traces = starter
            cpu[name].append(await batch(requests) / requests * 1e6)
            if callgrind is not None:
                callgrind.bench_dump(f"{name} {number}".encode())
    await lifecycle.stop()
    return {"cpu_us": cpu, "statuses": statuses}


def _callgrind_helper() -> Any:
    path = os.environ.get(CALLGRIND_ENV)
    if not path:
        return None
    import ctypes

    helper = ctypes.CDLL(path)
    helper.bench_dump.argtypes = [ctypes.c_char_p]
    return helper


def _build_callgrind_helper(scratch: Path) -> Path:
    source, library = scratch / "callgrind_helper.c", scratch / "callgrind_helper.so"
    source.write_text(CALLGRIND_HELPER)
    subprocess.run(["gcc", "-O1", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    return library


def _instructions(scratch: Path, pid: int, requests: int) -> dict[str, list[float]]:
    """Instructions per request of each batch, from callgrind's dumps (``<name> <number>`` as their trigger)."""
    batches: dict[str, dict[int, float]] = {}
    for dump in scratch.glob(f"callgrind.{pid}.*"):
        text = dump.read_text(errors="replace")
        trigger = re.search(r"^desc: Trigger: Client Request: (\S+) (\d+)$", text, re.M)
        totals = re.search(r"^totals: (\d+)", text, re.M)
        if trigger and totals:
            batches.setdefault(trigger[1], {})[int(trigger[2])] = int(totals[1]) / requests
    return {name: [found[n] for n in sorted(found)] for name, found in batches.items()}


def worker(requests: int, batches: int, concurrency: int, traceparent: bool) -> None:
    print(json.dumps(asyncio.run(_drive(requests, batches, concurrency, traceparent))), flush=True)


def _run(
    tree: Path, upstream: str, args: argparse.Namespace, scratch: Path, helper: Path | None
) -> dict[str, list[float]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "WARDEN_"))}
    env |= {
        "PYTHONPATH": str(tree),
        "WARDEN_DATA_DIR": tempfile.mkdtemp(dir=scratch),
        "WARDEN_OPENAI_BASE_URL": upstream,
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",  # never reached: the proxy does not export
    }
    command = [*(["taskset", "-c", args.cpus] if args.cpus else [])]
    if helper is not None:
        env[CALLGRIND_ENV] = str(helper)
        out = scratch / "callgrind.%p"
        command += ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    command += [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        str(args.requests),
        str(args.batches),
        str(args.concurrency),
        str(int(args.traceparent)),
    ]
    process = subprocess.Popen(command, env=env, cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"the measuring process failed:\n{stderr[-3000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    if set(result["statuses"]) != {"200"}:
        raise SystemExit(f"not every request was answered 200: {result['statuses']}")
    if helper is not None:
        return _instructions(scratch, process.pid, args.requests)
    return result["cpu_us"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000, help="requests per batch")
    parser.add_argument("--batches", type=int, default=12, help="batches of each side, alternating")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--cpus", default="0", help="taskset CPU list for the measured process ('' = unpinned)")
    parser.add_argument("--upstream-cpus", default="1", help="taskset CPU list for nginx ('' = unpinned)")
    parser.add_argument("--traceparent", action="store_true", help="every request continues a client's trace")
    parser.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="another source tree to measure the same way, in a process of its own (repeatable)",
    )
    parser.add_argument("--callgrind", action="store_true", help="count instructions under callgrind instead")
    parser.add_argument("--worker", nargs=4, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        requests, batches, concurrency, traceparent = args.worker
        return worker(requests, batches, concurrency, bool(traceparent))

    sys.path.insert(0, str(ROOT / "bench"))
    from common import NginxUpstream

    trees = {"this": ROOT} | {name: Path(tree).resolve() for name, _, tree in (s.partition("=") for s in args.source)}
    rows = []
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        nginx = NginxUpstream(scratch, args.upstream_cpus or None)
        nginx.start()
        helper = _build_callgrind_helper(scratch) if args.callgrind else None
        try:
            for name, tree in trees.items():
                cpu = _run(tree, nginx.base_url, args, scratch, helper)
                added = [on - off for off, on in zip(cpu["off"], cpu["traced"], strict=True)]
                rows.append((name, cpu["off"], cpu["traced"], added))
                print(f"{name}: traced - off by batch: {', '.join(f'{a:+.0f}' for a in added)}", flush=True)
        finally:
            if nginx.process is not None:
                nginx.process.stop()
    unit = "instructions (thousands)" if args.callgrind else "CPU, µs"
    if args.callgrind:
        rows = [(name, *([v / 1000 for v in side] for side in sides)) for name, *sides in rows]
    print(
        f"\n{unit} per request in the proxy's process: median over {args.batches} alternating batches of "
        f"{args.requests} requests at concurrency {args.concurrency}"
        f"{', each continuing a client trace' if args.traceparent else ''}"
    )
    print(f"{'source':12s} {'off':>8s} {'traced':>8s} {'added':>8s}  added (min..max)")
    for name, off, on, added in rows:
        print(
            f"{name:12s} {statistics.median(off):8.1f} {statistics.median(on):8.1f} {statistics.median(added):+8.1f}"
            f"  ({min(added):+.0f}..{max(added):+.0f})"
        )


if __name__ == "__main__":
    main()
