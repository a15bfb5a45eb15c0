"""A real Jaeger (v2: OTLP receiver, in-memory storage, query API) run as a plain process on loopback, no Docker.

The binary is built with Go from the Go module proxy through ``deploy/jaeger/go.mod`` (``github.com/jaegertracing/
jaeger`` pinned there) and cached as ``$WARDEN_JAEGER_CACHE/jaeger-<version>/jaeger`` (default ``~/.cache/warden``);
Go runs only when that binary is missing, so later runs need no network. Building takes minutes on a small machine:
``scripts/test-prerequisites`` does it before the tests.

Library use::

    with JaegerServer() as jaeger:
        jaeger.otlp_endpoint          # "http://127.0.0.1:<port>" for OTEL_EXPORTER_OTLP_ENDPOINT
        jaeger.trace(trace_id)        # the trace's spans as Jaeger stored them (OTLP JSON, from the query API)

Command line (from the repository root)::

    python -m tests.support.jaeger --fetch   # build and cache the binary
    python -m tests.support.jaeger --run     # a foreground Jaeger for development; prints its addresses
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from tests.support.kafka_broker import free_port
from tests.support.lifecycle import ProcessService, run_in_foreground

JAEGER_VERSION = "1.75.0"
"""Keep in step with ``deploy/jaeger/go.mod``."""
REPO_ROOT = Path(__file__).resolve().parents[2]
MODULE_DIR = REPO_ROOT / "deploy" / "jaeger"
PACKAGE = "github.com/jaegertracing/jaeger/cmd/jaeger"
_HOST = "127.0.0.1"
BUILD_TIMEOUT_S = 3600

_CONFIG = """\
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: "{host}:{query_port}"
    grpc:
      endpoint: "{host}:{query_grpc_port}"
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      http:
        endpoint: "{host}:{otlp_port}"
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


class JaegerError(RuntimeError):
    pass


def cache_root() -> Path:
    return Path(os.environ.get("WARDEN_JAEGER_CACHE") or Path.home() / ".cache" / "warden")


def binary_path() -> Path:
    return cache_root() / f"jaeger-{JAEGER_VERSION}" / "jaeger"


def ensure_binary() -> Path:
    """The cached binary, built first when missing (written under a temporary name, so a broken build leaves none)."""
    target = binary_path()
    if target.is_file() and os.access(target, os.X_OK):
        return target
    go = "go"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"jaeger.building-{os.getpid()}")
    env = {**os.environ, "GOFLAGS": "-buildvcs=false"}
    try:
        built = subprocess.run(
            [go, "build", "-o", str(partial), PACKAGE],
            cwd=MODULE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
        )
    except FileNotFoundError:
        raise JaegerError("no `go` on PATH: Go is needed to build Jaeger") from None
    if built.returncode != 0:
        partial.unlink(missing_ok=True)
        raise JaegerError(f"building Jaeger failed:\n{built.stderr[-4000:]}")
    partial.replace(target)
    return target


class JaegerServer(ProcessService):
    error = JaegerError
    start_timeout = 120.0

    def __init__(self, workdir: Path | None = None) -> None:
        self._owns_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="warden-jaeger-"))
        self.log_path = self.workdir / "jaeger.log"
        self.config_path = self.workdir / "config.yaml"
        self._proc = None
        self._lock = threading.Lock()
        self.otlp_port, self.query_port, self.query_grpc_port = (free_port() for _ in range(3))

    def __repr__(self) -> str:
        return f"Jaeger {JAEGER_VERSION} on {_HOST}:{self.otlp_port}"

    @property
    def otlp_endpoint(self) -> str:
        return f"http://{_HOST}:{self.otlp_port}"

    @property
    def query_url(self) -> str:
        return f"http://{_HOST}:{self.query_port}"

    def _spawn(self) -> None:
        binary = ensure_binary()
        self.config_path.write_text(
            _CONFIG.format(
                host=_HOST,
                otlp_port=self.otlp_port,
                query_port=self.query_port,
                query_grpc_port=self.query_grpc_port,
            )
        )
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [str(binary), "--config", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
            )

    def _probe(self) -> str | None:
        try:
            services = httpx.get(f"{self.query_url}/api/v3/services", timeout=2)
            # The receiver answers an empty export: OTLP/HTTP is listening.
            otlp = httpx.post(
                f"{self.otlp_endpoint}/v1/traces", content=b"", headers={"Content-Type": "application/x-protobuf"}
            )
        except httpx.HTTPError as exc:
            return str(exc)
        if services.status_code != 200 or otlp.status_code != 200:
            return f"query {services.status_code}, OTLP {otlp.status_code}"
        return None

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        """Every span of the trace, each with its resource's ``service.name`` under ``"service"`` (empty while
        Jaeger has none of it)."""
        answer = httpx.get(f"{self.query_url}/api/v3/traces/{trace_id}", timeout=10)
        if answer.status_code == 404:
            return []
        answer.raise_for_status()
        found = []
        for resource_spans in answer.json().get("result", {}).get("resourceSpans", []):
            service = ""
            for attribute in resource_spans.get("resource", {}).get("attributes", []):
                if attribute["key"] == "service.name":
                    service = attribute["value"].get("stringValue", "")
            for scope_spans in resource_spans.get("scopeSpans", []):
                for span in scope_spans.get("spans", []):
                    found.append({**span, "service": service})
        return found


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.jaeger", description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--fetch", action="store_true", help="build the Jaeger binary into the cache and exit")
    mode.add_argument("--run", action="store_true", help="run Jaeger in the foreground until Ctrl-C")
    args = parser.parse_args(argv)
    if args.fetch:
        print(ensure_binary())
        return 0
    jaeger = JaegerServer()
    return run_in_foreground(
        jaeger, lambda: f"OTLP/HTTP {jaeger.otlp_endpoint}, query {jaeger.query_url}", keep_data=False
    )


if __name__ == "__main__":
    sys.exit(_main())
