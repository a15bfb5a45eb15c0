"""pytest plugin: a real Redis server for the session (`pytest_plugins = ["tests.support.redis_fixture"]`).

Fixtures
- `redis_server` (session): the running `RedisServer` (``.url`` with its password, ``.kill()``, ``.start()`` …),
  started lazily on first use and stopped at the end of the session.

Failure policy, as for Kafka: a server that cannot start (e.g. no ``redis-server`` installed) FAILS every test that
needs it. A developer can turn that into a skip locally with WARDEN_REDIS_ALLOW_SKIP=1; the switch is ignored when
CI=true.

A test that stops or kills the server should start it again itself; as a safety net it is started again after any
test that left it down (empty: the server keeps nothing on disk).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.redis_server import RedisServer, RedisServerError

ALLOW_SKIP_ENV = "WARDEN_REDIS_ALLOW_SKIP"

_session_server: RedisServer | None = None


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    global _session_server
    server = RedisServer()
    failure: str | None = None
    try:
        server.start()
    except Exception as exc:  # RedisServerError, OSError
        server.kill()
        failure = f"{type(exc).__name__}: {exc}"
    if failure is not None:
        if not _in_ci() and os.environ.get(ALLOW_SKIP_ENV) == "1":
            pytest.skip(f"Redis server unavailable ({ALLOW_SKIP_ENV}=1): {failure}")
        pytest.fail(f"Redis server could not be started: {failure}", pytrace=False)
    _session_server = server
    try:
        yield server
    finally:
        _session_server = None
        server.close()


@pytest.fixture(autouse=True)
def _revive_redis_server() -> Iterator[None]:
    yield
    server = _session_server
    if server is not None and not server.is_running:
        try:
            server.start()
        except RedisServerError as exc:
            pytest.fail(f"Redis server could not be started again after the test: {exc}", pytrace=False)
