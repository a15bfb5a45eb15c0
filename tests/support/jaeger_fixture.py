"""pytest plugin: a real Jaeger for the session (listed in ``tests/conftest.py``'s ``pytest_plugins``).

Fixture ``jaeger`` (session) -> the running ``JaegerServer``, started lazily (only sessions that ask for it pay the
start-up, and the build the first time) and stopped at the end.

Failure policy, as for Kafka: when Jaeger cannot be built or started, every test that needs it FAILS with the reason,
in CI (CI=true) and locally alike. A developer without Go can opt out locally with WARDEN_JAEGER_ALLOW_SKIP=1 (a skip
instead); that switch is ignored when CI=true.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.jaeger import JaegerServer

ALLOW_SKIP_ENV = "WARDEN_JAEGER_ALLOW_SKIP"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def jaeger() -> Iterator[JaegerServer]:
    server = JaegerServer()
    try:
        server.start()
    except Exception as exc:  # JaegerError (build or start), OSError
        server.kill()
        if not _in_ci() and os.environ.get(ALLOW_SKIP_ENV) == "1":
            pytest.skip(f"Jaeger unavailable ({ALLOW_SKIP_ENV}=1): {exc}")
        pytest.fail(f"Jaeger could not be started: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.close()
