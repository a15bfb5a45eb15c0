"""A setting means the same in ``warden serve`` and in the distributed roles: the connect URLs the console gives, and
the logger's batches."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable

import httpx
import openai
from aiokafka import AIOKafkaConsumer
from prometheus_client import CollectorRegistry

from plumbing.bus.kafka import KafkaBus
from plumbing.bus.topics_admin import create_topics
from schemas import topics
from tests.conftest import API_KEY
from tests.distributed.events import interaction
from tests.support.agents import attribution, new_agent
from tests.support.consumer_groups import behind, end_offsets
from tests.support.processes import WardenProcess
from tests.support.serve_process import ServeProcess
from tests.support.warden_server import free_port

LOGGER_TOPICS = (topics.REQUESTS, topics.RESPONSES, topics.VIOLATIONS)
INTERACTIONS = 3
BATCHING = {"WARDEN_LOGGER_MAX_BATCH": "2", "WARDEN_LOGGER_MAX_WAIT_S": "3600"}
"""Two events a batch, and no batch written before it is full: one interaction's request and response (or two
events of two) make one insert."""


def metric(text: str, name: str, labels: str = "") -> float:
    pattern = rf"^{re.escape(name)}(?:{{[^}}]*{re.escape(labels)}[^}}]*}})? (\S+)$"
    return sum(float(m.group(1)) for m in re.finditer(pattern, text, re.M))


def wait_for_metric(url: str, name: str, value: float, output: Callable[[], str], timeout: float = 120) -> str:
    """The metrics page once ``name`` reached ``value``."""
    deadline = time.monotonic() + timeout
    while True:
        text = httpx.get(url, timeout=5).text
        if metric(text, name) >= value:
            return text
        assert time.monotonic() < deadline, output()
        time.sleep(0.1)


def created_profile_openai_url(console_url: str) -> tuple[str, str]:
    made = httpx.post(f"{console_url}/api/profiles", json={"name": f"p-{uuid.uuid4().hex[:8]}"}, timeout=10)
    assert made.status_code == 201, made.text
    return made.json()["id"], made.json()["connect_urls"]["openai"]


def test_serve_gives_connect_urls_on_the_address_it_listens_on(tmp_path):
    warden = ServeProcess(tmp_path / "data", env={"WARDEN_HOST": "localhost"})
    warden.url = f"http://localhost:{warden.port}"
    warden.start()
    try:
        profile_id, url = created_profile_openai_url(warden.url)
        assert url == f"http://localhost:{warden.port}/v1/openai/{profile_id}"
    finally:
        warden.interrupt()


def test_the_distributed_console_gives_the_same_connect_urls_as_serve(kafka_bootstrap, tmp_path):
    asyncio.run(create_topics(kafka_bootstrap, partitions=1))
    console_port, ingress_port = free_port(), free_port()
    env = {
        "WARDEN_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "WARDEN_DATA_DIR": str(tmp_path / "console"),
        "WARDEN_HOST": "localhost",
        "WARDEN_PORT": str(ingress_port),
        "WARDEN_CONSOLE_PORT": str(console_port),
    }
    console_url = f"http://localhost:{console_port}"
    console = WardenProcess(["console"], env, ready_url=f"{console_url}/healthz").start()
    try:
        profile_id, url = created_profile_openai_url(console_url)
        assert url == f"http://localhost:{ingress_port}/v1/openai/{profile_id}"
    finally:
        console.stop()


def test_serve_batches_its_inserts_as_the_logger_settings_say(fake_openai, tmp_path):
    warden = ServeProcess(tmp_path / "data", env={**BATCHING, "WARDEN_OPENAI_BASE_URL": fake_openai.url + "/v1"})
    warden.start()
    try:
        agent = new_agent()
        sdk = openai.OpenAI(
            base_url=f"{warden.url}/v1/openai", api_key=API_KEY, default_headers=attribution(agent), max_retries=0
        )
        for n in range(INTERACTIONS):
            sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"hello {n}"}])
        metrics_url, events = f"{warden.url}/metrics", 2 * INTERACTIONS
        text = wait_for_metric(metrics_url, "warden_logger_events_total", events, lambda: "events not stored")
        assert metric(text, "warden_logger_insert_seconds_count", 'table="warden.interactions"') == INTERACTIONS
        listed = httpx.get(f"{warden.url}/api/interactions", params={"agent_id": agent}, timeout=10).json()["items"]
        assert len(listed) == INTERACTIONS
    finally:
        warden.interrupt()


async def skip_to_the_end(bootstrap: str, group: str) -> None:
    """Commit ``group`` at the end of the logger's topics: it reads only what this test publishes."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await end_offsets(bootstrap, LOGGER_TOPICS)
        consumer.assign(list(ends))
        await consumer.commit(ends)
    finally:
        await consumer.stop()


async def publish(bootstrap: str, tmp_path, agent: str) -> None:
    bus = KafkaBus(bootstrap, client_id="test-producer", spool_dir=tmp_path / "spool", registry=CollectorRegistry())
    await bus.start()
    for n in range(INTERACTIONS):
        for event in interaction(agent, n):
            bus.publish(topics.REQUESTS if event.type == "request" else topics.RESPONSES, event.interaction_id, event)
    await bus.stop(timeout=60)


def test_the_distributed_logger_batches_its_inserts_as_the_same_settings_say(kafka_bootstrap, tmp_path):
    asyncio.run(create_topics(kafka_bootstrap, partitions=3))
    group = f"batching-{uuid.uuid4().hex[:8]}"
    asyncio.run(skip_to_the_end(kafka_bootstrap, group))
    port = free_port()
    env = {**BATCHING, "WARDEN_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "WARDEN_LOGGER_GROUP": group}
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    args = ["logger", "--data-dir", str(tmp_path / "logger"), "--metrics-port", str(port)]
    logger = WardenProcess(args, env, ready_url=metrics_url).start()
    try:
        asyncio.run(publish(kafka_bootstrap, tmp_path, new_agent()))
        text = wait_for_metric(metrics_url, "warden_logger_events_total", 2 * INTERACTIONS, logger.output)
        assert metric(text, "warden_logger_insert_seconds_count", 'table="warden.interactions"') == INTERACTIONS
    finally:
        logger.stop()


def test_serve_on_kafka_consumes_in_the_logger_group_the_settings_name(kafka_bootstrap, fake_openai, tmp_path):
    asyncio.run(create_topics(kafka_bootstrap, partitions=3))
    group = f"serve-logger-{uuid.uuid4().hex[:8]}"
    asyncio.run(skip_to_the_end(kafka_bootstrap, group))
    env = {
        "WARDEN_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "WARDEN_LOGGER_GROUP": group,
        "WARDEN_OPENAI_BASE_URL": fake_openai.url + "/v1",
    }
    warden = ServeProcess(tmp_path / "data", env=env).start()
    try:
        agent = new_agent()
        sdk = openai.OpenAI(
            base_url=f"{warden.url}/v1/openai", api_key=API_KEY, default_headers=attribution(agent), max_retries=0
        )
        sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hello"}])
        ends = asyncio.run(end_offsets(kafka_bootstrap, LOGGER_TOPICS))
        # The logger commits what it stored, in this group (not the default one): nothing is left behind in it.
        deadline = time.monotonic() + 120
        while asyncio.run(behind(kafka_bootstrap, group, ends)) > 0:
            assert time.monotonic() < deadline, f"the consumer group {group} did not commit the interaction"
            time.sleep(0.2)
        listed = httpx.get(f"{warden.url}/api/interactions", params={"agent_id": agent}, timeout=10).json()["items"]
        assert len(listed) == 1
    finally:
        warden.interrupt()
