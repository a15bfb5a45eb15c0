"""What building and exporting an interaction's spans costs in CPU, old path against new, in the same run.

    python bench/trace_cost.py [--interactions 3000] [--rounds 3] [--baseline-source REF_OR_DIR]

A set of interactions' events (request, answer, guardrail decisions, the guard's findings) is made once, as the
ingress and the guard publish them, and serialised to the JSON bytes the background process of ``warden serve``
reads from its hand-off. Each path runs in a fresh Python process: the tracing subscription exactly as Warden
composes it (``warden.composition.tracing``) on an in-process bus, fed those bytes with ``publish_raw`` in chunks
of ``--chunk`` interactions (a fraction of a second of traffic), then closed (what is queued is exported). The
exporter posts to a local OTLP/HTTP sink in another process that only decodes and counts spans, so the CPU
measured (``time.process_time`` of the worker: every thread, including an exporting thread) is the subscription's
decoding, building, encoding and sending, and nothing of the collector.

Paths: ``new`` (this checkout) and ``old`` (another source tree: a directory, or a git revision exported with
``git archive``; by default the last revision that exported through the OpenTelemetry SDK's tracer and batch
processor). Without a baseline, ``none`` (the same feeding with no tracing subscription) is the reference. The
worker processes alternate, ``--rounds`` times each; the table shows the median of the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SDK_REVISION = "7b9fd95"
"""The last revision whose tracing built its spans with the OpenTelemetry SDK (the default ``old`` path)."""


# --- the recorded events --------------------------------------------------------------------------------------------


def recorded(count: int) -> list[tuple[str, str, bytes]]:
    """``count`` interactions' events as (topic, key, JSON payload), in the order they reach the bus: whole and
    streamed chat completions, half continuing a client's trace, a quarter with guardrail decisions, one in five
    with a finding of the guard (one in ten with two), one in twenty retried upstream after a 503."""
    from schemas import topics
    from schemas.events import (
        Evidence,
        PolicyDecision,
        RequestEvent,
        ResponseEvent,
        TraceContext,
        UpstreamAttempt,
        ViolationEvent,
    )
    from schemas.view import Usage

    nginx = ROOT / "bench" / "nginx"
    whole, stream = (nginx / "chat-completion.json").read_text(), (nginx / "chat-completion.sse").read_text()
    messages = [
        {"role": "system", "content": "You are a concise assistant. Answer in one or two sentences."},
        {"role": "user", "content": "What is the capital of France, and why has it been important historically?"},
    ]
    out: list[tuple[str, str, bytes]] = []
    start = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    for n in range(count):
        streamed = n % 2 == 1
        interaction = str(uuid.UUID(int=n + 1))
        started = start + timedelta(milliseconds=3 * n)
        trace = TraceContext(
            trace_id=f"{n + 1:032x}",
            span_id=f"{2 * n + 1:016x}",
            parent_span_id=f"{0xABC0000 + n:016x}" if n % 4 < 2 else None,
            tracestate="vendor=opaque" if n % 8 == 0 else "",
        )
        who = {
            "interaction_id": interaction,
            "started_at": started,
            "profile_id": "default",
            "agent_id": f"agent-{n % 7}",
            "user_id": "user-1",
            "session_id": f"session-{n % 13}",
            "provider": "openai",
            "model": "gpt-4o-mini",
        }
        body = {"model": "gpt-4o-mini", "messages": messages, "temperature": 0.2, "max_tokens": 128}
        if streamed:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        decided = n % 4 == 3
        request = RequestEvent(
            **who,
            route="/chat/completions",
            stream=streamed,
            request_received=json.dumps(body, separators=(",", ":")),
            trace=trace,
            decisions=[PolicyDecision(kind="tool_result_untrusted", tool="fetch_url", reason="web content")]
            if decided
            else [],
        )
        attempts = [UpstreamAttempt(span_id=f"{2 * n + 2:016x}", started_ms=0.3, finished_ms=2.6, status=200)]
        if n % 20 == 19:
            attempts.insert(
                0, UpstreamAttempt(span_id=f"{0xF000000 + n:016x}", started_ms=0.2, finished_ms=0.9, status=503)
            )
        response = ResponseEvent(
            **who,
            route="/chat/completions",
            status=200,
            response_body=stream if streamed else whole,
            usage=Usage(input_tokens=42, output_tokens=21),
            finished_at=started + timedelta(milliseconds=3),
            latency_ms=3.0,
            ttft_ms=2.7,
            finish_reason="stop",
            answer_text="Paris is the capital of France. It has been the country's political and cultural centre.",
            decisions=[PolicyDecision(kind="tool_call_blocked", tool="read_file", tool_call_id="c1", reason="no")]
            if decided
            else [],
            trace=trace,
            upstream_attempts=attempts,
        )
        out.append((topics.REQUESTS, interaction, request.model_dump_json().encode()))
        out.append((topics.RESPONSES, interaction, response.model_dump_json().encode()))
        for finding in range((n % 5 == 4) + (n % 10 == 9)):
            violation = ViolationEvent(
                violation_id=str(uuid.uuid4()),
                interaction_id=interaction,
                detected_at=started + timedelta(milliseconds=20),
                detector=("secrets.github_token", "injection.rules")[finding],
                category=("secret", "prompt_injection")[finding],
                severity="high",
                score=0.9,
                evidence=Evidence(location="request.messages[1]", excerpt="ghp_…"),
                profile_id="default",
                trace=trace,
            )
            out.append((topics.VIOLATIONS, interaction, violation.model_dump_json().encode()))
    return out


# --- the sink -------------------------------------------------------------------------------------------------------


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keeps connections open, as collectors do
    spans = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        encoding = self.headers.get("Content-Encoding", "")
        data = gzip.decompress(data) if encoding == "gzip" else zlib.decompress(data) if encoding == "deflate" else data
        request = ExportTraceServiceRequest.FromString(data)
        count = sum(len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans)
        with _Sink.lock:
            _Sink.spans += count
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        body = str(_Sink.spans).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def sink() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    print(server.server_address[1], flush=True)
    server.serve_forever()


def sink_count(url: str) -> int:
    with urllib.request.urlopen(url + "/count", timeout=10) as reply:
        return int(reply.read())


# --- one path, in its own process -----------------------------------------------------------------------------------


async def _feed(events: list[tuple[str, str, bytes]], chunk: int, traced: bool) -> dict[str, Any]:
    from prometheus_client import CollectorRegistry

    from plumbing.bus.inprocess import InProcessBus
    from schemas import topics
    from warden import composition

    bus, registry = InProcessBus(), CollectorRegistry()
    service = composition.tracing(bus, registry) if traced else None
    await bus.start()
    interactions = [i for i, (topic, _, _) in enumerate(events) if topic == topics.REQUESTS] + [len(events)]
    started = time.process_time()
    for first in range(0, len(interactions) - 1, chunk):
        for topic, key, payload in events[
            interactions[first] : interactions[min(first + chunk, len(interactions) - 1)]
        ]:
            bus.publish_raw(topic, key, payload)
        while bus.pending():
            await asyncio.sleep(0.05)
    await bus.stop()
    if service is not None:
        service.close()
    cpu = time.process_time() - started
    exported = registry.get_sample_value("warden_trace_spans_exported_total") or 0.0
    dropped = sum(
        sample.value
        for metric in registry.collect()
        if metric.name == "warden_trace_spans_dropped"
        for sample in metric.samples
        if sample.name.endswith("_total")
    )
    return {"cpu_s": cpu, "exported": exported, "dropped": dropped}


def worker(count: int, chunk: int, traced: bool) -> None:
    events = recorded(count)
    print(json.dumps(asyncio.run(_feed(events, chunk, traced))), flush=True)


# --- the comparison -------------------------------------------------------------------------------------------------


def _source_tree(spec: str, scratch: Path) -> Path:
    if Path(spec).is_dir():
        return Path(spec).resolve()
    tree = scratch / "baseline"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", spec], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def _run(tree: Path, sink_url: str, args: argparse.Namespace, traced: bool) -> dict[str, Any]:
    env = os.environ | {
        "PYTHONPATH": str(tree),
        "OTEL_EXPORTER_OTLP_ENDPOINT": sink_url,
        "OTEL_SERVICE_NAME": "trace-cost",
        # Nothing dropped for want of room: every path exports every span (in batches of the default size).
        "OTEL_BSP_MAX_QUEUE_SIZE": "1000000",
    }
    before = sink_count(sink_url)
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", str(args.interactions), str(args.chunk)]
    reply = subprocess.run([*command, "traced" if traced else "none"], env=env, capture_output=True, text=True)
    if reply.returncode != 0:
        raise SystemExit(f"the worker for {tree} failed:\n{reply.stderr[-3000:]}")
    result = json.loads(reply.stdout.strip().splitlines()[-1])
    result["received"] = sink_count(sink_url) - before
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interactions", type=int, default=3000)
    parser.add_argument("--chunk", type=int, default=200, help="interactions published before the bus drains")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--baseline-source",
        default=SDK_REVISION,
        help="the old path: a source directory or a git revision ('' : compare with no tracing)",
    )
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        return sink()
    if args.worker:
        return worker(int(args.worker[0]), int(args.worker[1]), args.worker[2] == "traced")

    from schemas import topics

    spans = sum(
        1 + len(json.loads(p).get("upstream_attempts", []))
        if t == topics.RESPONSES
        else 1
        if t == topics.VIOLATIONS
        else 0
        for t, _, p in recorded(args.interactions)
    )
    sink_process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--sink"], stdout=subprocess.PIPE, text=True
    )
    try:
        sink_url = f"http://127.0.0.1:{sink_process.stdout.readline().strip()}"
        with tempfile.TemporaryDirectory() as scratch:
            paths: dict[str, tuple[Path, bool]] = {"new": (ROOT, True)}
            if args.baseline_source:
                paths = {"old": (_source_tree(args.baseline_source, Path(scratch)), True)} | paths
            else:
                paths = {"none": (ROOT, False)} | paths
            results: dict[str, list[dict[str, Any]]] = {name: [] for name in paths}
            for _ in range(args.rounds):
                for name, (tree, traced) in paths.items():
                    results[name].append(_run(tree, sink_url, args, traced))
    finally:
        sink_process.terminate()
    print(f"{args.interactions} interactions, {spans} spans each run; load average {os.getloadavg()[0]:.2f}")
    print(f"{'path':<6} {'CPU µs/interaction':>20} {'rounds (µs)':>28} {'exported':>9} {'dropped':>8} {'received':>9}")
    medians = {}
    for name, runs in results.items():
        per = [r["cpu_s"] * 1e6 / args.interactions for r in runs]
        medians[name] = statistics.median(per)
        last = runs[-1]
        rounds = " ".join(f"{p:.0f}" for p in per)
        print(
            f"{name:<6} {medians[name]:>20.1f} {rounds:>28} {last['exported']:>9.0f} {last['dropped']:>8.0f}"
            f" {last['received']:>9}"
        )
    if "old" in medians:
        print(f"old / new: {medians['old'] / medians['new']:.1f} times")
    else:
        print(f"new - none: {medians['new'] - medians['none']:.1f} µs per interaction")


if __name__ == "__main__":
    main()
