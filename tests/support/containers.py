"""The official Kafka and ClickHouse images through testcontainers, for machines with a Docker engine.

The fixtures (tests/support/kafka_fixture.py, tests/support/clickhouse_fixture.py) use these when
``docker_available()``; without Docker they start the Maven-fetched Kafka jars (`KafkaBroker`) and the chDB-served
ClickHouse (`ClickHouseServer`). Both kinds offer the same handle: the same addresses, users and lifecycle
(start / stop / kill / restart, sync and async), and a restart keeps the ports and the data, because the host ports
are chosen once and bound explicitly and a stopped container keeps its filesystem.

WARDEN_TESTCONTAINERS: ``auto`` (default: use Docker when an engine answers), ``1`` (must use Docker), ``0`` (never).
Images: WARDEN_KAFKA_IMAGE (default ``apache/kafka:<WARDEN_KAFKA_VERSION>``), WARDEN_CLICKHOUSE_IMAGE (default
``clickhouse/clickhouse-server:26.9``, the ClickHouse release the chDB wheel embeds).
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from tests.support.clickhouse_server import ClickHouseServer, users_xml
from tests.support.kafka_broker import NODE_ID, KafkaBroker

MODE_ENV = "WARDEN_TESTCONTAINERS"
DEFAULT_CLICKHOUSE_IMAGE = "clickhouse/clickhouse-server:26.9"


def docker_wanted() -> bool | None:
    """True: Docker is required; False: never; None: use it when an engine answers."""
    mode = os.environ.get(MODE_ENV, "auto").strip().lower()
    return {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}.get(mode)


@functools.cache
def docker_available() -> bool:
    """Whether the fixtures should start containers (see WARDEN_TESTCONTAINERS)."""
    wanted = docker_wanted()
    if wanted is not None:
        return wanted
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no SDK, no socket, engine not answering: all mean "no Docker here"
        return False


class _Container:
    """Lifecycle of one long-lived container: created on the first start, then killed / stopped / started in place."""

    image: str
    _container: Any  # testcontainers' DockerContainer once created

    def _create(self) -> Any:
        raise NotImplementedError

    def _lifecycle_init(self) -> None:
        self._container = None
        self._lock = threading.Lock()

    @property
    def is_running(self) -> bool:
        if self._container is None:
            return False
        wrapped = self._container.get_wrapped_container()
        wrapped.reload()
        return wrapped.status == "running"

    @property
    def pid(self) -> int | None:
        return None  # the process lives in the engine's namespace; use kill()

    def _exit_code(self) -> str | None:
        if self._container is None:
            return "not started"
        wrapped = self._container.get_wrapped_container()
        wrapped.reload()
        if wrapped.status in ("running", "created", "restarting"):
            return None
        return f"container {wrapped.status}, exit code {wrapped.attrs.get('State', {}).get('ExitCode')}"

    def _spawn(self) -> None:
        self._spawned_at = time.monotonic()
        if self._container is None:
            self._container = self._create()
            self._container.start()
        else:
            self._container.get_wrapped_container().start()

    def stop(self, timeout: float = 30.0) -> None:
        with self._lock:
            if self.is_running:
                self._container.get_wrapped_container().stop(timeout=int(timeout))

    def kill(self) -> None:
        with self._lock:
            if self.is_running:
                self._container.get_wrapped_container().kill()

    def start(self) -> None:
        with self._lock:
            if not self.is_running:
                self._spawn()
        self.wait_ready()

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)

    def close(self) -> None:
        with self._lock:
            if self._container is not None:
                self._container.stop()  # removes the container and its anonymous volumes
                self._container = None
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        if self._container is None:
            return "(no container yet)"
        out, err = self._container.get_logs()
        return "\n".join((out + err).decode(errors="replace").splitlines()[-lines:])


class ClickHouseContainer(_Container, ClickHouseServer):
    """The official ClickHouse server image with the same users as the chDB-served server."""

    flavour = "docker"

    def __init__(self, *, image: str | None = None, start_timeout: float = 120.0) -> None:
        ClickHouseServer.__init__(self, start_timeout=start_timeout)
        self._lifecycle_init()
        self.image = image or os.environ.get("WARDEN_CLICKHOUSE_IMAGE", DEFAULT_CLICKHOUSE_IMAGE)
        self.log_path = Path(f"docker logs ({self.image})")

    def _create(self) -> Any:
        from testcontainers.core.container import DockerContainer

        users = self.workdir / "warden-users.xml"
        users.write_text(users_xml(self.admin_password, self.analyst_password, launcher_user=False))
        users.chmod(0o644)  # read by the image's clickhouse user
        return (
            DockerContainer(self.image)
            .with_bind_ports(8123, self.http_port)
            .with_bind_ports(9000, self.tcp_port)
            .with_volume_mapping(str(users), "/etc/clickhouse-server/users.d/warden.xml", "ro")
        )

    def __repr__(self) -> str:
        return f"ClickHouseContainer({self.host}:{self.http_port}, {self.image})"


class KafkaContainer(_Container, KafkaBroker):
    """The official Apache Kafka image as a single KRaft node, with `KafkaBroker`'s surface and readiness check."""

    flavour = "docker"

    def __init__(self, *, image: str | None = None, start_timeout: float = 120.0) -> None:
        KafkaBroker.__init__(self, start_timeout=start_timeout)
        self._lifecycle_init()
        self.image = image or os.environ.get("WARDEN_KAFKA_IMAGE", f"apache/kafka:{self.version}")
        self.log_path = Path(f"docker logs ({self.image})")

    def _environment(self) -> dict[str, str]:
        # The image turns KAFKA_A_B into a.b. KafkaBroker's single-node settings, with the container's listeners and
        # the static quorum the image formats its storage for.
        settings = {
            key: value
            for key, value in self._server_properties().items()
            if key not in {"controller.quorum.bootstrap.servers", "log.dirs"}
        }
        settings.update(
            {
                "listeners": "PLAINTEXT://:9092,CONTROLLER://:9093",
                "advertised.listeners": f"PLAINTEXT://{self.bootstrap_servers}",
                "controller.quorum.voters": f"{NODE_ID}@localhost:9093",
            }
        )
        env = {"KAFKA_" + key.upper().replace(".", "_"): value for key, value in settings.items()}
        env["CLUSTER_ID"] = "w" + uuid.uuid4().hex[:21]  # 22 characters like Kafka's own, never starting with '-'
        return env

    def _create(self) -> Any:
        from testcontainers.core.container import DockerContainer

        container = DockerContainer(self.image).with_bind_ports(9092, self.port)
        for key, value in self._environment().items():
            container.with_env(key, value)
        return container

    def __repr__(self) -> str:
        return f"KafkaContainer({self.bootstrap_servers}, {self.image})"
