"""pytest plugin: a real ClickHouse server for the session (`pytest_plugins = ["tests.support.clickhouse_fixture"]`).

Fixtures
- `clickhouse_server` (session): the running server's handle, started lazily on first use and stopped at the end.
  ``.url`` (admin, what WARDEN_CLICKHOUSE_URL takes), ``.analyst_url`` (read-only user), ``.host``, ``.http_port``,
  ``.tcp_port``, ``.admin_user`` / ``.admin_password``, ``.analyst_user`` / ``.analyst_password``, ``.query(sql)``,
  and ``start`` / ``stop`` / ``kill`` / ``restart`` (same ports, same data; async variants ``astart`` …) for fault
  tests. With a Docker engine it is the official image through testcontainers (`ClickHouseContainer`), otherwise the
  chDB-served server (`ClickHouseServer`); see tests/support/containers.py for WARDEN_TESTCONTAINERS.

Failure policy and the start again after a test that left it down: tests/support/session_service.py (a server that
cannot start FAILS; WARDEN_CLICKHOUSE_ALLOW_SKIP=1 makes it a skip outside CI).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.clickhouse_server import ClickHouseServer
from tests.support.session_service import SessionService

ALLOW_SKIP_ENV = "WARDEN_CLICKHOUSE_ALLOW_SKIP"

_session = SessionService[ClickHouseServer]("ClickHouse server", ALLOW_SKIP_ENV)


def new_clickhouse_server() -> ClickHouseServer:
    """The official image where Docker runs, else the chDB-served server: one handle either way."""
    from tests.support.containers import ClickHouseContainer, docker_available

    return ClickHouseContainer() if docker_available() else ClickHouseServer()


@pytest.fixture(scope="session")
def clickhouse_server() -> Iterator[ClickHouseServer]:
    yield from _session.run(new_clickhouse_server())


@pytest.fixture(autouse=True)
def _revive_clickhouse_server() -> Iterator[None]:
    yield
    _session.revive()
