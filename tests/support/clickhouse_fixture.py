"""pytest plugin: a real ClickHouse server for the session (`pytest_plugins = ["tests.support.clickhouse_fixture"]`).

Fixtures
- `clickhouse_server` (session): the running server's handle, started lazily on first use and stopped at the end.
  ``.url`` (admin, what WARDEN_CLICKHOUSE_URL takes), ``.analyst_url`` (read-only user), ``.host``, ``.http_port``,
  ``.tcp_port``, ``.admin_user`` / ``.admin_password``, ``.analyst_user`` / ``.analyst_password``, ``.query(sql)``,
  and ``start`` / ``stop`` / ``kill`` / ``restart`` (same ports, same data; async variants ``astart`` …) for fault
  tests. With a Docker engine it is the official image through testcontainers (`ClickHouseContainer`), otherwise the
  chDB-served server (`ClickHouseServer`); see tests/support/containers.py for WARDEN_TESTCONTAINERS.

Failure policy, as for Kafka: a server that cannot start FAILS every test that needs it. A developer can turn that into
a skip locally with WARDEN_CLICKHOUSE_ALLOW_SKIP=1; the switch is ignored when CI=true.

A test that stops or kills the server should start it again itself; as a safety net it is started again after any
test that left it down.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.clickhouse_server import ClickHouseServer, ClickHouseServerError

ALLOW_SKIP_ENV = "WARDEN_CLICKHOUSE_ALLOW_SKIP"

_session_server: ClickHouseServer | None = None


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def new_clickhouse_server() -> ClickHouseServer:
    """The official image where Docker runs, else the chDB-served server: one handle either way."""
    from tests.support.containers import ClickHouseContainer, docker_available

    return ClickHouseContainer() if docker_available() else ClickHouseServer()


@pytest.fixture(scope="session")
def clickhouse_server() -> Iterator[ClickHouseServer]:
    global _session_server
    server = new_clickhouse_server()
    failure: str | None = None
    try:
        server.start()
    except Exception as exc:  # the launcher's errors, OSError, the Docker SDK's own errors
        failure = f"{type(exc).__name__}: {exc}"
    if failure is not None:
        server.kill()
        if not _in_ci() and os.environ.get(ALLOW_SKIP_ENV) == "1":
            pytest.skip(f"ClickHouse server unavailable ({ALLOW_SKIP_ENV}=1): {failure}")
        pytest.fail(f"ClickHouse server could not be started: {failure}", pytrace=False)
    _session_server = server
    try:
        yield server
    finally:
        _session_server = None
        server.close()


@pytest.fixture(autouse=True)
def _revive_clickhouse_server() -> Iterator[None]:
    yield
    server = _session_server
    if server is not None and not server.is_running:
        try:
            server.start()
        except ClickHouseServerError as exc:
            pytest.fail(f"ClickHouse server could not be started again after the test: {exc}", pytrace=False)
