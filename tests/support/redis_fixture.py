"""pytest plugin: a real Redis server for the session (`pytest_plugins = ["tests.support.redis_fixture"]`).

Fixtures
- `redis_server` (session): the running `RedisServer` (``.url`` with its password, ``.kill()``, ``.start()`` …),
  started lazily on first use and stopped at the end of the session.

Failure policy and the start again after a test that left it down: tests/support/session_service.py (a server that
cannot start, e.g. no ``redis-server`` installed, FAILS; WARDEN_REDIS_ALLOW_SKIP=1 makes it a skip outside CI). A
server started again is empty: it keeps nothing on disk.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.redis_server import RedisServer
from tests.support.session_service import SessionService

ALLOW_SKIP_ENV = "WARDEN_REDIS_ALLOW_SKIP"

_session = SessionService[RedisServer]("Redis server", ALLOW_SKIP_ENV)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    yield from _session.run(RedisServer())


@pytest.fixture(autouse=True)
def _revive_redis_server() -> Iterator[None]:
    yield
    _session.revive()
