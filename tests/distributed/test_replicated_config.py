"""Profiles and quarantines replicate through Kafka to every process: a console and two ingresses as separate
processes on a real broker; and no process waits for the broker to start serving its last known copy."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import openai
from pydantic import BaseModel

from plumbing.bus.topics_admin import create_topics
from plumbing.config.file_map import FileMap
from plumbing.config.kafka_map import KafkaMap
from schemas import topics
from schemas.profiles import Profile, ProfileSpec, new_profile
from schemas.quarantine import Quarantine
from tests.conftest import API_KEY
from tests.support.processes import WardenProcess
from tests.support.warden_server import free_port

AWS_KEY = "AKIA" + "Q7WZR2XK5M9TPL3D"
WAIT_S = 60
"""Safety bound so a broken replication fails instead of hanging; the measured time is printed."""


class Item(BaseModel):
    name: str


def start_ingress(tmp_path, name: str, bootstrap: str, upstream: str) -> tuple[WardenProcess, str]:
    port = free_port()
    process = WardenProcess(
        ["ingress", "--port", str(port), "--data-dir", str(tmp_path / name)],
        {"WARDEN_KAFKA_BOOTSTRAP_SERVERS": bootstrap, "WARDEN_OPENAI_BASE_URL": upstream, "WARDEN_HOST": "127.0.0.1"},
        ready_url=f"http://127.0.0.1:{port}/healthz",
    ).start()
    return process, f"http://127.0.0.1:{port}"


def start_console(tmp_path, bootstrap: str) -> tuple[WardenProcess, str]:
    port = free_port()
    process = WardenProcess(
        ["console", "--port", str(port), "--data-dir", str(tmp_path / "console")],
        {"WARDEN_KAFKA_BOOTSTRAP_SERVERS": bootstrap, "WARDEN_HOST": "127.0.0.1"},
        ready_url=f"http://127.0.0.1:{port}/api/profiles",
    ).start()
    return process, f"http://127.0.0.1:{port}"


def ask(ingress: str, profile_id: str, agent: str = "replication-test") -> tuple[int, str]:
    """One chat completion through ``ingress`` with ``profile_id``: (status, what the upstream was sent)."""
    sdk = openai.OpenAI(
        base_url=f"{ingress}/v1/openai/{profile_id}",
        api_key=API_KEY,
        max_retries=0,
        default_headers={"X-Archestra-Agent-Id": agent},
    )
    marker = uuid.uuid4().hex
    try:
        sdk.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": f"{marker} my key is {AWS_KEY}"}]
        )
    except openai.APIStatusError as exc:
        return exc.status_code, ""
    return 200, marker


def until(condition, what: str) -> float:
    """Seconds until ``condition()`` held."""
    began = time.monotonic()
    while not condition():
        assert time.monotonic() - began < WAIT_S, f"never: {what}"
        time.sleep(0.02)
    return time.monotonic() - began


def test_profiles_and_quarantines_reach_every_process(kafka_bootstrap, fake_openai, tmp_path):
    asyncio.run(create_topics(kafka_bootstrap, partitions=3))
    upstream = fake_openai.url + "/v1"
    console, console_url = start_console(tmp_path, kafka_bootstrap)
    first, first_url = start_ingress(tmp_path, "ingress-1", kafka_bootstrap, upstream)
    second, second_url = start_ingress(tmp_path, "ingress-2", kafka_bootstrap, upstream)
    ingresses = [first_url, second_url]

    def sent_upstream(marker: str) -> str:
        return next(r.raw_body.decode() for r in reversed(fake_openai.received) if marker.encode() in r.raw_body)

    def applied(url: str, profile_id: str, redacted: bool) -> bool:
        status, marker = ask(url, profile_id)
        return status == 200 and (AWS_KEY not in sent_upstream(marker)) == redacted

    took: dict[str, float] = {}
    try:
        created = httpx.post(
            f"{console_url}/api/profiles", json={"name": "replicated", "mode": "restrictive", "redact_secrets": True}
        )
        assert created.status_code == 201, created.text
        profile_id = created.json()["id"]
        # Read-your-writes on the console that made the change.
        assert httpx.get(f"{console_url}/api/profiles/{profile_id}").status_code == 200
        took["create"] = max(until(lambda u=u: applied(u, profile_id, True), f"profile on {u}") for u in ingresses)

        spec = {"name": "replicated", "mode": "restrictive", "redact_secrets": False}
        assert httpx.put(f"{console_url}/api/profiles/{profile_id}", json=spec).status_code == 200
        took["update"] = max(until(lambda u=u: applied(u, profile_id, False), f"update on {u}") for u in ingresses)

        # A quarantine decision, written as the guard writes it, refuses the agent on both ingresses.
        agent = f"agent-{uuid.uuid4().hex[:8]}"
        asyncio.run(quarantine(kafka_bootstrap, tmp_path, profile_id, agent))
        took["quarantine"] = max(
            until(lambda u=u: ask(u, profile_id, agent)[0] == 403, f"quarantine on {u}") for u in ingresses
        )
        assert ask(first_url, profile_id)[0] == 200  # only that agent
        lifted = httpx.delete(f"{console_url}/api/quarantines/{profile_id}/{agent}")
        assert lifted.status_code == 204, lifted.text
        took["lift"] = max(until(lambda u=u: ask(u, profile_id, agent)[0] == 200, f"lift on {u}") for u in ingresses)

        assert httpx.delete(f"{console_url}/api/profiles/{profile_id}").status_code == 204
        assert httpx.get(f"{console_url}/api/profiles/{profile_id}").status_code == 404
        took["delete"] = max(until(lambda u=u: ask(u, profile_id)[0] == 404, f"delete on {u}") for u in ingresses)
    finally:
        for process in (first, second, console):
            process.interrupt()
    print("replication to both ingresses (s):", {k: round(v, 3) for k, v in took.items()})


async def quarantine(bootstrap: str, tmp_path, profile_id: str, agent: str) -> None:
    decisions = KafkaMap(bootstrap, topics.QUARANTINES, Quarantine, tmp_path / "guard-quarantines.cache.json")
    await decisions.start()
    try:
        now = datetime.now(UTC)
        decision = Quarantine(
            profile_id=profile_id, agent_id=agent, reason="test", created_at=now, expires_at=now + timedelta(hours=1)
        )
        await decisions.put(decision.key, decision)
    finally:
        await decisions.stop()


async def test_a_new_instance_reads_the_whole_topic_and_follows_it(kafka_bootstrap, tmp_path):
    topic = f"test-config-{uuid.uuid4().hex[:8]}"
    writer = KafkaMap(kafka_bootstrap, topic, Item, tmp_path / "writer.json")
    await writer.start()
    try:
        for n in range(300):
            await writer.put(f"p{n}", Item(name=f"p{n}"))
        for n in range(0, 300, 3):
            assert await writer.delete(f"p{n}")
        reader = KafkaMap(kafka_bootstrap, topic, Item, tmp_path / "reader.json")
        await reader.start()
        try:
            await asyncio.wait_for(reader.caught_up.wait(), WAIT_S)
            assert sorted(p.name for p in reader.values()) == sorted(f"p{n}" for n in range(300) if n % 3)
            await writer.put("late", Item(name="late"))
            async with asyncio.timeout(WAIT_S):
                while reader.get("late") is None:
                    await asyncio.sleep(0.01)
        finally:
            await reader.stop()
    finally:
        await writer.stop()
    # The copy a restart serves: every key, from the snapshot and the journal of changes since.
    copy = KafkaMap("127.0.0.1:9", topic, Item, tmp_path / "reader.json")
    assert sorted(p.name for p in copy.values()) == sorted([*(f"p{n}" for n in range(300) if n % 3), "late"])


async def test_with_the_broker_away_a_start_serves_the_local_copy_at_once(kafka_broker, tmp_path):
    topic = f"test-config-{uuid.uuid4().hex[:8]}"
    first = KafkaMap(kafka_broker.bootstrap_servers, topic, Item, tmp_path / "copy.json")
    await first.start()
    await first.put("kept", Item(name="kept"))
    await first.stop()

    await kafka_broker.astop()
    try:
        again = KafkaMap(kafka_broker.bootstrap_servers, topic, Item, tmp_path / "copy.json")
        await asyncio.wait_for(again.start(), 5)  # start() itself never waits for the broker (it used to, 2 x 10 s)
        assert again.get("kept") == Item(name="kept")
        assert not again.caught_up.is_set()
        await kafka_broker.astart()
        # Catches up in the background once the broker is back.
        await asyncio.wait_for(again.caught_up.wait(), WAIT_S)
        assert again.get("kept") == Item(name="kept")
        await again.stop()
    finally:
        if not kafka_broker.is_running:
            await kafka_broker.astart()


def test_an_ingress_with_the_broker_away_serves_the_profiles_it_knew(fake_openai, tmp_path):
    profile = new_profile(ProfileSpec(name="known", mode="restrictive", redact_secrets=True))
    copy = FileMap(tmp_path / "ingress" / "profiles.cache.json", Profile)
    copy.apply(profile.id, profile)  # what an earlier run read from the topic
    copy.close()
    with socket.socket() as closed:  # a port nobody listens on: the broker is away
        closed.bind(("127.0.0.1", 0))
        bootstrap = f"127.0.0.1:{closed.getsockname()[1]}"
        began = time.monotonic()
        ingress, url = start_ingress(tmp_path, "ingress", bootstrap, fake_openai.url + "/v1")
        print(f"ingress ready with the broker away in {time.monotonic() - began:.2f}s")
        try:
            status, marker = ask(url, profile.id)
            assert status == 200
            sent = next(r.raw_body.decode() for r in reversed(fake_openai.received) if marker.encode() in r.raw_body)
            assert AWS_KEY not in sent and "[REDACTED:aws_access_key_id]" in sent
            assert ask(url, str(uuid.uuid4()))[0] == 404
        finally:
            ingress.interrupt(timeout=10)
