"""``WARDEN_METRICS_REQUIRE_TOKEN`` guards the metrics of the services that serve nothing else (guard, logger) too."""

from __future__ import annotations

import time

import httpx

from tests.support.processes import WardenProcess
from tests.support.warden_server import free_port

TOKEN = "metrics-t0ken"


def test_the_guards_metrics_need_the_admin_token(tmp_path, kafka_bootstrap):
    port = free_port()
    guard = WardenProcess(
        ["guard", "--data-dir", str(tmp_path / "guard"), "--metrics-port", str(port)],
        {
            "WARDEN_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "WARDEN_ADMIN_TOKEN": TOKEN,
            "WARDEN_METRICS_REQUIRE_TOKEN": "true",
        },
    ).start()
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 60
        while True:  # up once it answers at all
            try:
                anonymous = httpx.get(url, timeout=2)
                break
            except httpx.TransportError:
                assert guard.proc is not None and guard.proc.poll() is None, guard.output()
                assert time.monotonic() < deadline, "the guard's metrics never answered"
                time.sleep(0.2)
        assert anonymous.status_code == 401
        allowed = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
        assert allowed.status_code == 200
        assert "warden_guard_events_scored_total" in allowed.text
    finally:
        guard.interrupt()
