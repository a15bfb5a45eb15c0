"""Distributed Warden on a real broker: nothing lost, nothing doubled, when a logger is killed or the broker goes."""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import time
import uuid

import httpx
import openai
from prometheus_client import CollectorRegistry

from plumbing.bus.kafka import KafkaBus
from plumbing.bus.topics_admin import create_topics
from schemas import topics
from tests.conftest import API_KEY
from tests.distributed.events import interaction
from tests.support.chdb_query import query
from tests.support.processes import WardenProcess
from tests.support.warden_server import free_port


def metric(url: str, name: str) -> float:
    text = httpx.get(url, timeout=5).text
    values = [float(m.group(1)) for m in re.finditer(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M)]
    return sum(values)


def logger(tmp_path, bootstrap: str) -> WardenProcess:
    port = free_port()
    return WardenProcess(
        ["logger", "--data-dir", str(tmp_path / "logger"), "--metrics-port", str(port)],
        {"WARDEN_KAFKA_BOOTSTRAP_SERVERS": bootstrap, "WARDEN_LOGGER_MAX_BATCH": "500"},
        ready_url=f"http://127.0.0.1:{port}/metrics",
    )


def stored(tmp_path, agent: str) -> tuple[int, int, int]:
    """(logical interactions, complete ones, physical rows) for one agent in the logger's chDB."""
    (row,) = query(
        tmp_path / "logger" / "clickhouse",
        f"""
        SELECT (SELECT count() FROM warden.interactions FINAL WHERE agent_id = '{agent}') AS logical,
               (SELECT count() FROM warden.interactions FINAL WHERE agent_id = '{agent}' AND status = 200) AS done,
               (SELECT count() FROM warden.interactions WHERE agent_id = '{agent}') AS physical""",
    )
    return row["logical"], row["done"], row["physical"]


async def publish_all(bootstrap: str, tmp_path, events) -> None:
    bus = KafkaBus(
        bootstrap, client_id="test-producer", spool_dir=tmp_path / "producer-spool", registry=CollectorRegistry()
    )
    await bus.start()
    for event in events:
        bus.publish(topics.REQUESTS if event.type == "request" else topics.RESPONSES, event.interaction_id, event)
    await bus.stop()
    assert bus.spilled._value.get() == 0


def test_a_logger_killed_mid_stream_and_restarted_stores_every_interaction_exactly_once(kafka_bootstrap, tmp_path):
    asyncio.run(create_topics(kafka_bootstrap, partitions=3))
    agent = f"kill9-{uuid.uuid4().hex[:8]}"
    total = 6000
    events = [event for n in range(total) for event in interaction(agent, n)]
    first = logger(tmp_path, kafka_bootstrap).start()
    try:
        # Two thirds now, the rest once the logger is dead: it cannot have stored everything before the kill.
        asyncio.run(publish_all(kafka_bootstrap, tmp_path, events[: len(events) * 2 // 3]))
        deadline = time.monotonic() + 60
        while metric(first.ready_url, "warden_logger_rows_total") < 1000:
            assert time.monotonic() < deadline, first.output()
            time.sleep(0.02)
        first.kill9()
    finally:
        first.stop()
    asyncio.run(publish_all(kafka_bootstrap, tmp_path, events[len(events) * 2 // 3 :]))
    partial = stored(tmp_path, agent)
    assert partial[0] < total

    second = logger(tmp_path, kafka_bootstrap).start()
    try:
        deadline = time.monotonic() + 120
        while (
            metric(second.ready_url, "warden_consumer_lag") > 0
            or metric(second.ready_url, "warden_logger_rows_total") == 0
        ):
            assert time.monotonic() < deadline, second.output()
            time.sleep(0.2)
        time.sleep(1)
        second.interrupt()
    finally:
        second.stop()
    logical, done, physical = stored(tmp_path, agent)
    assert logical == total and done == total
    assert physical >= total  # redelivered rows exist physically and fold into one logical row each


def test_the_ingress_keeps_proxying_while_the_broker_is_down_and_delivers_everything_after(
    kafka_broker, kafka_bootstrap, fake_openai, tmp_path
):
    asyncio.run(create_topics(kafka_bootstrap, partitions=3))
    agent = f"outage-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {
        "WARDEN_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "WARDEN_OPENAI_BASE_URL": fake_openai.url + "/v1",
        "WARDEN_HOST": "127.0.0.1",
        "WARDEN_BUS_BUFFER_LIMIT": "50",
    }
    ingress = WardenProcess(
        ["ingress", "--port", str(port), "--data-dir", str(tmp_path / "ingress")],
        env,
        ready_url=f"http://127.0.0.1:{port}/healthz",
    ).start()
    sink = logger(tmp_path, kafka_bootstrap).start()
    sdk = openai.OpenAI(
        base_url=f"http://127.0.0.1:{port}/v1/openai",
        api_key=API_KEY,
        max_retries=0,
        default_headers={"X-Archestra-Agent-Id": agent},
        timeout=30,
    )

    latencies: list[float] = []

    def call(n: int) -> str:
        began = time.monotonic()
        answer = sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"n{n}"}]).id
        latencies.append(time.monotonic() - began)
        return answer

    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            answered = list(pool.map(call, range(100)))
            kafka_broker.stop()
            answered += list(pool.map(call, range(100, 400)))  # broker down: still proxied
            kafka_broker.start()
            answered += list(pool.map(call, range(400, 500)))
        assert len(answered) == 500
        print(f"slowest proxied request during the outage test: {max(latencies):.3f}s")
        deadline = time.monotonic() + 120
        ingress_metrics = f"http://127.0.0.1:{port}/metrics"
        while True:
            pending = metric(ingress_metrics, "warden_bus_buffered_events") + metric(
                ingress_metrics, "warden_bus_spooled_bytes"
            )
            if pending == 0 and metric(sink.ready_url, "warden_consumer_lag") == 0:
                break
            assert time.monotonic() < deadline, ingress.output()
            time.sleep(0.5)
        spilled = metric(ingress_metrics, "warden_bus_spilled_events_total")
        dropped = metric(ingress_metrics, "warden_bus_dropped_events_total")
        time.sleep(2)
        sink.interrupt()
    finally:
        ingress.stop()
        sink.stop()
        if not kafka_broker.is_running:
            kafka_broker.start()
    logical, done, _ = stored(tmp_path, agent)
    assert (logical, done) == (500, 500)
    assert spilled > 0, "the outage never reached the disk spool"
    assert dropped == 0
