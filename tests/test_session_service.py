"""The real services' session fixtures (Kafka, ClickHouse, Redis, Jaeger) share one policy: a service that cannot
start fails the tests that need it, a skip only on a developer's explicit request and never under CI, and a service a
test left down is started again. Exercised on a real Redis server: one whose binary is missing, one killed."""

from __future__ import annotations

import pytest

from tests.support.redis_server import RedisServer
from tests.support.session_service import SessionService

ALLOW = "WARDEN_TEST_SERVICE_ALLOW_SKIP"


def start_without_a_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARDEN_REDIS_SERVER", "/nonexistent/redis-server")
    session = SessionService[RedisServer]("Redis server", ALLOW)
    next(session.run(RedisServer()))


@pytest.mark.parametrize("ci", ["true", "1", "yes", "TRUE"])
def test_under_ci_a_service_that_cannot_start_fails_even_when_a_skip_is_asked_for(monkeypatch, ci) -> None:
    monkeypatch.setenv("CI", ci)
    monkeypatch.setenv(ALLOW, "1")
    with pytest.raises(pytest.fail.Exception, match=r"Redis server could not be started: .*nonexistent"):
        start_without_a_binary(monkeypatch)


def test_outside_ci_a_service_that_cannot_start_fails_unless_a_skip_is_asked_for(monkeypatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv(ALLOW, raising=False)
    with pytest.raises(pytest.fail.Exception):
        start_without_a_binary(monkeypatch)
    monkeypatch.setenv(ALLOW, "1")
    with pytest.raises(pytest.skip.Exception, match=f"Redis server unavailable \\({ALLOW}=1\\)"):
        start_without_a_binary(monkeypatch)


def test_a_service_a_test_left_down_is_started_again_and_closed_at_the_end() -> None:
    session = SessionService[RedisServer]("Redis server", ALLOW)
    running = session.run(RedisServer())
    server = next(running)
    try:
        server.kill()
        assert not server.is_running
        session.revive()
        assert server.is_running
    finally:
        running.close()  # the fixture's teardown
    assert not server.is_running and session.current is None


def test_a_service_that_cannot_be_started_again_fails_the_test_that_left_it_down(monkeypatch) -> None:
    session = SessionService[RedisServer]("Redis server", ALLOW)
    running = session.run(RedisServer())
    server = next(running)
    try:
        server.kill()
        monkeypatch.setenv("WARDEN_REDIS_SERVER", "/nonexistent/redis-server")
        with pytest.raises(pytest.fail.Exception, match="could not be started again after the test"):
            session.revive()
    finally:
        running.close()
