"""Nothing lost, nothing doubled, when the store fails under load: each test sends a known number of interactions
while the store's disk is full, its directory read-only, or the ClickHouse server killed, and then counts what the
record and every read copy hold.

- embedded: `warden serve` answering the official OpenAI SDK, its chDB directory on a small tmpfs;
- distributed: `warden logger` consuming Kafka into chDB on a small tmpfs, and into the ClickHouse server that is
  killed with SIGKILL and restarted (same directory, same ports) while events keep coming.

Each fault lasts WARDEN_FAULT_SECONDS (default 10 s; the README says so); the counts are exact whatever it is.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from plumbing.bus.topics_admin import create_topics
from tests.conftest import API_KEY
from tests.distributed.events import interaction
from tests.distributed.test_nothing_lost import metric, publish_all
from tests.support.agents import attribution
from tests.support.chdb_query import query
from tests.support.faults import Tmpfs, disk_full, fault_seconds, read_only, require_faults
from tests.support.processes import WardenProcess
from tests.support.serve_process import ServeProcess
from tests.support.warden_server import free_port

TABLES = (
    "interactions",
    "interactions_by_agent",
    "interactions_by_user",
    "interactions_by_time",
    "interactions_by_id",
)
DISK_BYTES = 96 << 20


def fault(kind: str, disk: Path) -> contextlib.AbstractContextManager[Path]:
    return disk_full(disk) if kind == "disk_full" else read_only(disk)


def counts_sql(agent: str) -> str:
    """Per table: rows after folding and distinct interactions, for one agent (the agent ids are generated here)."""
    parts = [
        f"(SELECT count() FROM warden.{t} FINAL WHERE agent_id = '{agent}') AS {t}_rows, "
        f"(SELECT uniqExact(interaction_id) FROM warden.{t} FINAL WHERE agent_id = '{agent}') AS {t}_ids"
        for t in TABLES
    ]
    return "SELECT " + ", ".join(parts)


def missing_and_doubled(row: dict[str, Any], expected: int) -> dict[str, tuple[int, int]]:
    """Per table: (interactions missing, interactions stored more than once) against the known number."""
    return {t: (expected - row[f"{t}_ids"], row[f"{t}_rows"] - row[f"{t}_ids"]) for t in TABLES}


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout:.0f}s: {what}"
        time.sleep(0.2)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[Path], Path]]:
    """Mounts a small tmpfs where asked; unmounted after the test."""
    require_faults(tmp_path)
    with contextlib.ExitStack() as stack:
        yield lambda path: stack.enter_context(Tmpfs(path, DISK_BYTES))


# ---- embedded: warden serve ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["disk_full", "read_only"])
def test_warden_serve_loses_and_doubles_nothing_while_its_store_cannot_write(kind, tmpfs, tmp_path, fake_openai):
    data = tmp_path / "data"
    disk = tmpfs(data / "clickhouse")
    agent = f"serve-{kind}-{uuid.uuid4().hex[:8]}"
    process = ServeProcess(data, env={"WARDEN_OPENAI_BASE_URL": fake_openai.url + "/v1"}).start()
    metrics = f"{process.url}/metrics"
    sdk = openai.OpenAI(base_url=f"{process.url}/v1/openai", api_key=API_KEY, max_retries=0, timeout=30)

    def call(n: int) -> str:
        headers = attribution(agent, user_id=f"u{n}")
        return sdk.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": f"n{n}"}], extra_headers=headers
        ).id

    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            answered = list(pool.map(call, range(100)))
            wait_for(lambda: metric(metrics, "warden_logger_events_total") >= 200, "the first 100 stored")
            with fault(kind, disk):
                until = time.monotonic() + fault_seconds()
                while time.monotonic() < until:  # answered all along the fault
                    answered += list(pool.map(call, range(len(answered), len(answered) + 20)))
                    time.sleep(0.2)
                failures = metric(metrics, "warden_logger_insert_failures_total")
            answered += list(pool.map(call, range(len(answered), len(answered) + 100)))
        total = len(answered)
        wait_for(lambda: metric(metrics, "warden_logger_events_total") >= 2 * total, f"{total} interactions stored")
        output = process.interrupt()
    finally:
        process.kill()
    users = f"(SELECT uniqExact(user_id) FROM warden.interactions FINAL WHERE agent_id = '{agent}') AS users"
    (row,) = query(data / "clickhouse", f"{counts_sql(agent)}, {users}")
    assert missing_and_doubled(row, total) == {t: (0, 0) for t in TABLES}, output[-3000:]
    assert row["users"] == total  # each answered request (its own user id) stored once
    assert failures > 0, "the store never refused a write: the fault did not happen"


# ---- distributed: warden logger on Kafka -----------------------------------------------------------------------------


def start_logger(bootstrap: str, data_dir: Path, env: dict[str, str] | None = None) -> WardenProcess:
    port = free_port()
    return WardenProcess(
        ["logger", "--data-dir", str(data_dir), "--metrics-port", str(port)],
        {"WARDEN_KAFKA_BOOTSTRAP_SERVERS": bootstrap, "WARDEN_LOGGER_MAX_BATCH": "500", **(env or {})},
        ready_url=f"http://127.0.0.1:{port}/metrics",
    ).start()


def drained(logger: WardenProcess, events: int) -> Callable[[], bool]:
    assert logger.ready_url is not None
    url = logger.ready_url
    return lambda: metric(url, "warden_logger_events_total") >= events and metric(url, "warden_consumer_lag") == 0


@pytest.mark.parametrize("kind", ["disk_full", "read_only"])
def test_the_logger_on_kafka_loses_and_doubles_nothing_while_its_store_cannot_write(
    kind, tmpfs, tmp_path, kafka_bootstrap
):
    asyncio.run(create_topics(kafka_bootstrap, partitions=3))
    data = tmp_path / "logger"
    disk = tmpfs(data / "clickhouse")
    agent = f"logger-{kind}-{uuid.uuid4().hex[:8]}"
    total = 3000
    events = [e for n in range(total) for e in interaction(agent, n)]
    third = len(events) // 3
    logger = start_logger(kafka_bootstrap, data)
    try:
        asyncio.run(publish_all(kafka_bootstrap, tmp_path, events[:third]))
        wait_for(drained(logger, third), "the first third stored")
        assert logger.ready_url is not None
        with fault(kind, disk):
            asyncio.run(publish_all(kafka_bootstrap, tmp_path, events[third : 2 * third]))
            time.sleep(fault_seconds())  # the logger keeps trying to write them for the whole fault
            failures = metric(logger.ready_url, "warden_logger_insert_failures_total")
        asyncio.run(publish_all(kafka_bootstrap, tmp_path, events[2 * third :]))
        wait_for(drained(logger, len(events)), "every event stored")
        logger.interrupt()
    finally:
        logger.stop()
    (row,) = query(data / "clickhouse", counts_sql(agent))
    assert missing_and_doubled(row, total) == {t: (0, 0) for t in TABLES}, logger.output()[-3000:]
    assert failures > 0, "the store never refused a write: the fault did not happen"


def test_the_logger_loses_and_doubles_nothing_when_the_clickhouse_server_is_killed_under_load(
    tmp_path, kafka_bootstrap, clickhouse_server
):
    asyncio.run(create_topics(kafka_bootstrap, partitions=3))
    agent = f"server-kill-{uuid.uuid4().hex[:8]}"
    total = 3000
    events = [e for n in range(total) for e in interaction(agent, n)]
    chunks = [events[i : i + 300] for i in range(0, len(events), 300)]
    logger = start_logger(kafka_bootstrap, tmp_path / "logger", {"WARDEN_CLICKHOUSE_URL": clickhouse_server.url})
    assert logger.ready_url is not None
    published = threading.Event()

    def publish() -> None:
        for chunk in chunks:  # a steady stream, before, during and after the outage
            asyncio.run(publish_all(kafka_bootstrap, tmp_path, chunk))
            time.sleep(0.3)
        published.set()

    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            stream = pool.submit(publish)
            wait_for(lambda: metric(logger.ready_url or "", "warden_logger_events_total") >= 600, "first rows stored")
            clickhouse_server.kill()
            time.sleep(fault_seconds() / 2)
            clickhouse_server.start()  # the same directory on the same ports
            stream.result(timeout=300)
        wait_for(drained(logger, len(events)), "every event stored")
        failures = metric(logger.ready_url, "warden_logger_insert_failures_total")
        logger.interrupt()
    finally:
        logger.stop()
    assert published.is_set()
    answer = clickhouse_server.query(counts_sql(agent) + " FORMAT JSONEachRow")
    assert missing_and_doubled(json.loads(answer), total) == {t: (0, 0) for t in TABLES}, logger.output()[-3000:]
    assert failures > 0, "no insert failed: the server was not down while the logger wrote"
