"""pytest plugin: a real Kafka broker for the session (`pytest_plugins = ["tests.support.kafka_fixture"]`).

Fixtures
- `kafka_bootstrap` (session) -> "host:port". Uses WARDEN_KAFKA_BOOTSTRAP_SERVERS when set; otherwise starts one
  broker for the whole session (the official image through testcontainers where a Docker engine runs,
  else `KafkaBroker` on the Maven jars), lazily (only sessions that request the fixture pay the start-up) and stops it
  at the end.
- `kafka_broker` (session) -> the `KafkaBroker`, for tests that stop, kill or restart it. Skipped (with the reason)
  when an external broker is configured, since that one cannot be restarted from here.

Failure policy and the start again after a test that left the broker down: tests/support/session_service.py. If the
broker cannot start, every test that needs it FAILS with the reason and the broker's log tail; a developer without
Java/Maven can opt out locally with WARDEN_KAFKA_ALLOW_SKIP=1 (a skip instead), a switch ignored when CI=true.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.kafka_broker import KafkaBroker
from tests.support.session_service import SessionService

EXTERNAL_ENV = "WARDEN_KAFKA_BOOTSTRAP_SERVERS"
ALLOW_SKIP_ENV = "WARDEN_KAFKA_ALLOW_SKIP"

_session = SessionService[KafkaBroker]("Kafka broker", ALLOW_SKIP_ENV)


def new_kafka_broker() -> KafkaBroker:
    """The official image where Docker runs (same surface, see tests/support/containers.py), else the Maven jars."""
    from tests.support.containers import KafkaContainer, docker_available

    return KafkaContainer() if docker_available() else KafkaBroker()  # type: ignore[return-value]


@pytest.fixture(scope="session")
def _warden_kafka_broker() -> Iterator[KafkaBroker]:
    # A broker that failed to start keeps its temp dir, so the full broker.log named in the message can be read.
    yield from _session.run(new_kafka_broker())


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> str:
    external = os.environ.get(EXTERNAL_ENV)
    if external:
        return external
    broker: KafkaBroker = request.getfixturevalue("_warden_kafka_broker")
    return broker.bootstrap_servers


@pytest.fixture(scope="session")
def kafka_broker(request: pytest.FixtureRequest) -> KafkaBroker:
    external = os.environ.get(EXTERNAL_ENV)
    if external:
        pytest.skip(f"{EXTERNAL_ENV}={external} points at an external broker, which cannot be stopped or restarted")
    return request.getfixturevalue("_warden_kafka_broker")


@pytest.fixture(autouse=True)
def _revive_kafka_broker() -> Iterator[None]:
    yield
    _session.revive()
