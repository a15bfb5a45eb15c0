"""Distributed Warden on a real broker: nothing lost, nothing doubled, when a logger is killed or the broker goes."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import signal
import time
import uuid

import httpx
import openai
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from plumbing.bus.kafka import KafkaBus
from plumbing.bus.topics_admin import create_topics
from schemas import topics
from services.logger.service import GROUP as LOGGER_GROUP
from tests.conftest import API_KEY
from tests.distributed.events import interaction
from tests.distributed.test_logger_on_kafka import dead_letters
from tests.support.chdb_query import query
from tests.support.consumer_groups import lag
from tests.support.processes import WardenProcess
from tests.support.warden_server import free_port

LOGGER_TOPICS = (topics.REQUESTS, topics.RESPONSES, topics.VIOLATIONS)


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


def wait_until_logged(bootstrap: str, sink: WardenProcess, timeout: float = 120) -> None:
    """Until the logger has committed every event on its topics (so its rows are written)."""
    deadline = time.monotonic() + timeout
    while lag(bootstrap, LOGGER_GROUP, LOGGER_TOPICS) > 0:
        assert time.monotonic() < deadline, sink.output()
        time.sleep(0.2)


def wait_until_delivered(metrics_url: str, ingress: WardenProcess, timeout: float = 120) -> None:
    """Until the ingress holds nothing for the broker, in memory or in its event log."""
    deadline = time.monotonic() + timeout
    while True:
        buffered = metric(metrics_url, "warden_bus_buffered_events")
        spooled = metric(metrics_url, "warden_bus_spooled_bytes")
        if buffered == 0 and spooled == 0:
            return
        assert time.monotonic() < deadline, f"{buffered} events in memory, {spooled} bytes logged\n{ingress.output()}"
        time.sleep(0.2)


async def publish_all(bootstrap: str, tmp_path, events) -> None:
    bus = KafkaBus(
        bootstrap, client_id="test-producer", spool_dir=tmp_path / "producer-spool", registry=CollectorRegistry()
    )
    await bus.start()
    for event in events:
        bus.publish(topics.REQUESTS if event.type == "request" else topics.RESPONSES, event.interaction_id, event)
    await bus.stop(timeout=120)
    assert sum(bus.delivered.labels(t)._value.get() for t in (topics.REQUESTS, topics.RESPONSES)) == len(events)


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
    # Poison among the rest: payloads no event model reads, keyed like interactions.
    poison = {f"poison-{agent}-{n}": payload for n, payload in enumerate([b"{", b"{}", b"null", b"\xff\xfe", b"[1]"])}
    asyncio.run(send_raw(kafka_bootstrap, topics.RESPONSES, poison))
    asyncio.run(publish_all(kafka_bootstrap, tmp_path, events[len(events) * 2 // 3 :]))
    partial = stored(tmp_path, agent)
    assert partial[0] < total

    second = logger(tmp_path, kafka_bootstrap).start()
    try:
        wait_until_logged(kafka_bootstrap, second)
        second.interrupt()
    finally:
        second.stop()
    logical, done, physical = stored(tmp_path, agent)
    assert logical == total and done == total
    assert physical >= total  # redelivered rows exist physically and fold into one logical row each
    letters = asyncio.run(dead_letters(kafka_bootstrap, set(poison)))
    assert set(letters) == set(poison)  # each with its reason, none stored


async def send_raw(bootstrap: str, topic: str, payloads: dict[str, bytes]) -> None:
    raw = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await raw.start()
    try:
        for key, payload in payloads.items():
            await raw.send_and_wait(topic, payload, key=key.encode())
    finally:
        await raw.stop()


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
        "WARDEN_BUS_BUFFER_MAX_BYTES": "20000",
    }
    ingress = WardenProcess(
        ["ingress", "--port", str(port), "--data-dir", str(tmp_path / "ingress")],
        env,
        ready_url=f"http://127.0.0.1:{port}/healthz",
    ).start()
    sink = logger(tmp_path, kafka_bootstrap).start()
    sdk = client(port, agent)

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
        ingress_metrics = f"http://127.0.0.1:{port}/metrics"
        wait_until_delivered(ingress_metrics, ingress)
        spilled = metric(ingress_metrics, "warden_bus_spilled_events_total")
        dropped = metric(ingress_metrics, "warden_bus_dropped_events_total")
        wait_until_logged(kafka_bootstrap, sink)
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


def start_ingress(tmp_path, bootstrap: str, upstream: str, port: int) -> WardenProcess:
    return WardenProcess(
        ["ingress", "--port", str(port), "--data-dir", str(tmp_path / "ingress")],
        {"WARDEN_KAFKA_BOOTSTRAP_SERVERS": bootstrap, "WARDEN_OPENAI_BASE_URL": upstream, "WARDEN_HOST": "127.0.0.1"},
        ready_url=f"http://127.0.0.1:{port}/healthz",
    ).start()


def ingress_for(tmp_path, bootstrap: str, fake_openai, prefix: str) -> tuple[str, str, int, WardenProcess]:
    """(agent id, upstream URL, port, the running ingress process)."""
    asyncio.run(create_topics(bootstrap, partitions=3))
    upstream = fake_openai.url + "/v1"
    port = free_port()
    return f"{prefix}-{uuid.uuid4().hex[:8]}", upstream, port, start_ingress(tmp_path, bootstrap, upstream, port)


def client(port: int, agent: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"http://127.0.0.1:{port}/v1/openai",
        api_key=API_KEY,
        max_retries=0,
        default_headers={"X-Archestra-Agent-Id": agent},
        timeout=30,
    )


def answer(port: int, agent: str, count: int) -> list[str]:
    sdk = client(port, agent)

    def call(n: int) -> str:
        return sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"n{n}"}]).id

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return list(pool.map(call, range(count)))


def deliver_and_count(tmp_path, bootstrap: str, upstream: str, agent: str) -> tuple[int, int, int]:
    """Start the ingress again on its data directory and a logger; once everything is stored, count it."""
    port = free_port()
    ingress = start_ingress(tmp_path, bootstrap, upstream, port)
    sink = logger(tmp_path, bootstrap).start()
    try:
        wait_until_delivered(f"http://127.0.0.1:{port}/metrics", ingress)
        wait_until_logged(bootstrap, sink)
        sink.interrupt()
    finally:
        ingress.stop()
        sink.stop()
    return stored(tmp_path, agent)


def test_an_ingress_killed_during_a_broker_pause_loses_nothing_it_answered(
    kafka_broker, kafka_bootstrap, fake_openai, tmp_path
):
    agent, upstream, port, ingress = ingress_for(tmp_path, kafka_bootstrap, fake_openai, "paused")
    total = 300
    try:
        os.kill(kafka_broker.pid, signal.SIGSTOP)  # the broker hangs: no error, no acknowledgement
        try:
            assert len(answer(port, agent, total)) == total
            # Each answered interaction is two events; once the log has them all (fsynced), the crash comes.
            deadline = time.monotonic() + 60
            url = f"http://127.0.0.1:{port}/metrics"
            while metric(url, "warden_bus_spilled_events_total") < 2 * total:
                assert time.monotonic() < deadline, ingress.output()
                time.sleep(0.01)
            ingress.kill9()
        finally:
            os.kill(kafka_broker.pid, signal.SIGCONT)
    finally:
        ingress.stop()
    logical, done, physical = deliver_and_count(tmp_path, kafka_bootstrap, upstream, agent)
    assert (logical, done) == (total, total)  # nothing lost, and each interaction once
    assert physical >= total


def test_a_graceful_stop_with_the_broker_away_is_quick_and_loses_nothing(
    kafka_broker, kafka_bootstrap, fake_openai, tmp_path
):
    agent, upstream, port, ingress = ingress_for(tmp_path, kafka_bootstrap, fake_openai, "stopped")
    total = 200
    try:
        kafka_broker.stop()
        assert len(answer(port, agent, total)) == total
        began = time.monotonic()
        ingress.interrupt(timeout=10)  # fails beyond 10 s
        print(f"graceful stop with the broker away: {time.monotonic() - began:.2f}s")
        assert ingress.proc is not None and ingress.proc.returncode == 0, ingress.output()
    finally:
        ingress.stop()
        kafka_broker.start()
    logical, done, _ = deliver_and_count(tmp_path, kafka_bootstrap, upstream, agent)
    assert (logical, done) == (total, total)
