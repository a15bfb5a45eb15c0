"""What the pytest plugins of the real services (Kafka, ClickHouse, Redis, Jaeger) share: one service for the whole
session, started lazily by its session fixture, and the failure policy.

Failure policy: a service that cannot start FAILS every test that needs it, with the reason, because these tests exist
to exercise the real thing and a silent skip would hide that. A developer without the service's prerequisites can
turn that into a skip locally with the service's ``WARDEN_<NAME>_ALLOW_SKIP=1``; the switch is ignored when CI=true,
so under CI a missing service is always a failure, never a skip.

A test that stops or kills the service should start it again itself; as a safety net ``revive`` (called after every
test by the plugin's autouse fixture) starts it again when a test left it down, so one failing test cannot take the
service away from the rest of the session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Generic, NoReturn, Protocol, TypeVar

import pytest


class Service(Protocol):
    @property
    def is_running(self) -> bool: ...

    def start(self) -> None: ...

    def kill(self) -> None: ...

    def close(self) -> None: ...


S = TypeVar("S", bound=Service)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


class SessionService(Generic[S]):
    """``what``: the service in messages ("Redis server"); ``allow_skip_env``: the variable that turns a failure to
    start into a skip outside CI."""

    def __init__(self, what: str, allow_skip_env: str) -> None:
        self.what = what
        self.allow_skip_env = allow_skip_env
        self.current: S | None = None
        """The session's service once a test asked for it (read by ``revive`` without forcing a start)."""

    def unavailable(self, reason: str) -> NoReturn:
        if not in_ci() and os.environ.get(self.allow_skip_env) == "1":
            pytest.skip(f"{self.what} unavailable ({self.allow_skip_env}=1): {reason}")
        pytest.fail(f"{self.what} could not be started: {reason}", pytrace=False)

    def run(self, service: S) -> Iterator[S]:
        """The body of the session fixture: start ``service`` (or fail, or skip: see the policy), yield it, close it."""
        failure: str | None = None
        try:
            service.start()
        except Exception as exc:  # the launchers' own errors, OSError, the Docker SDK's errors
            failure = f"{type(exc).__name__}: {exc}"
        if failure is not None:
            service.kill()  # a temp dir stays, so a log named in the message can be read
            self.unavailable(failure)
        self.current = service
        try:
            yield service
        finally:
            self.current = None
            service.close()

    def revive(self) -> None:
        """After a test: start the session's service again if the test left it down."""
        service = self.current
        if service is None or service.is_running:
            return
        try:
            service.start()
        except Exception as exc:
            pytest.fail(f"{self.what} could not be started again after the test: {exc}", pytrace=False)
