"""pytest plugin: a real Jaeger for the session (listed in ``tests/conftest.py``'s ``pytest_plugins``).

Fixture ``jaeger`` (session) -> the running ``JaegerServer``, started lazily (only sessions that ask for it pay the
start-up, and the build the first time) and stopped at the end.

Failure policy: tests/support/session_service.py. When Jaeger cannot be built or started, every test that needs it
FAILS with the reason; a developer without Go can opt out locally with WARDEN_JAEGER_ALLOW_SKIP=1 (a skip instead),
a switch ignored when CI=true.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.jaeger import JaegerServer
from tests.support.session_service import SessionService

ALLOW_SKIP_ENV = "WARDEN_JAEGER_ALLOW_SKIP"

_session = SessionService[JaegerServer]("Jaeger", ALLOW_SKIP_ENV)


@pytest.fixture(scope="session")
def jaeger() -> Iterator[JaegerServer]:
    yield from _session.run(JaegerServer())
