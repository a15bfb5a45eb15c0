"""pytest plugin: a real Kafka broker for the session (`pytest_plugins = ["tests.support.kafka_fixture"]`).

Fixtures
- `kafka_bootstrap` (session) -> "host:port". Uses WARDEN_KAFKA_BOOTSTRAP_SERVERS when set; otherwise starts one
  broker for the whole session (the official image through testcontainers where a Docker engine runs,
  else `KafkaBroker` on the Maven jars), lazily (only sessions that request the fixture pay the start-up) and stops it
  at the end.
- `kafka_broker` (session) -> the `KafkaBroker`, for tests that stop, kill or restart it. Skipped (with the reason)
  when an external broker is configured, since that one cannot be restarted from here.

Failure policy: if the broker cannot start, every test that needs it FAILS with the reason and the broker's log tail,
in CI (CI=true) and locally alike, because these tests exist to exercise real Kafka and a silent skip would hide
that. A developer without Java/Maven can opt out locally with WARDEN_KAFKA_ALLOW_SKIP=1 (turns the failure into a
skip); that switch is ignored when CI=true.

A test that stops or kills the broker should start it again itself; as a safety net the broker is started again after
any test that left it down, so one failing test cannot take Kafka away from the rest of the session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.kafka_broker import KafkaBroker, KafkaBrokerError

EXTERNAL_ENV = "WARDEN_KAFKA_BOOTSTRAP_SERVERS"
ALLOW_SKIP_ENV = "WARDEN_KAFKA_ALLOW_SKIP"

# The session's broker once some test asked for it; read by the revive hook without forcing a start.
_session_broker: KafkaBroker | None = None


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def new_kafka_broker() -> KafkaBroker:
    """The official image where Docker runs (same surface, see tests/support/containers.py), else the Maven jars."""
    from tests.support.containers import KafkaContainer, docker_available

    return KafkaContainer() if docker_available() else KafkaBroker()  # type: ignore[return-value]


def _unavailable(reason: str) -> None:
    if not _in_ci() and os.environ.get(ALLOW_SKIP_ENV) == "1":
        pytest.skip(f"Kafka broker unavailable ({ALLOW_SKIP_ENV}=1): {reason}")
    pytest.fail(f"Kafka broker could not be started: {reason}", pytrace=False)


@pytest.fixture(scope="session")
def _warden_kafka_broker() -> Iterator[KafkaBroker]:
    global _session_broker
    broker = new_kafka_broker()
    failure: str | None = None
    try:
        broker.start()
    except Exception as exc:  # KafkaBrokerError, OSError, the Docker SDK's own errors
        # The temp dir stays so the full broker.log named in the message can be read.
        broker.kill()
        failure = str(exc)
    if failure is not None:
        _unavailable(failure)
    _session_broker = broker
    try:
        yield broker
    finally:
        _session_broker = None
        broker.close()


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
    broker = _session_broker
    if broker is not None and not broker.is_running:
        try:
            broker.start()
        except KafkaBrokerError as exc:
            pytest.fail(f"Kafka broker could not be started again after the test: {exc}", pytrace=False)
