"""Warden keys replicate through Kafka like profiles: a console and two ingresses, each its own process on a real
broker, sharing one WARDEN_MASTER_KEY. A key made on the console is accepted by both ingresses (each sends the
profile's stored credential upstream), and once revoked or rotated out it is refused by both; the time each change
took to reach both is printed (the contract: within 2 s)."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from plumbing.bus.topics_admin import create_topics
from tests.conftest import MASTER_KEY
from tests.distributed.test_replicated_config import until
from tests.support.processes import WardenProcess
from tests.support.warden_server import free_port

STORED = "sk-proj-storedOnKafka" + "0a1b2c3d4e5f"


def start(tmp_path, role: str, name: str, env: dict[str, str]) -> tuple[WardenProcess, str]:
    port = free_port()
    flag = "--port"
    ready = "/healthz" if role == "ingress" else "/api/profiles"
    process = WardenProcess(
        [role, flag, str(port), "--data-dir", str(tmp_path / name)],
        {**env, "WARDEN_HOST": "127.0.0.1", "WARDEN_MASTER_KEY": MASTER_KEY},
        ready_url=f"http://127.0.0.1:{port}{ready}",
    ).start()
    return process, f"http://127.0.0.1:{port}"


def status(ingress: str, secret: str, fake_openai, marker: str | None = None) -> int:
    marker = marker or uuid.uuid4().hex
    response = httpx.post(
        f"{ingress}/v1/openai/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": marker}]},
        headers={"Authorization": f"Bearer {secret}"},
        timeout=10,
    )
    if response.status_code == 200:
        (received,) = [r for r in fake_openai.received if marker.encode() in r.raw_body]
        assert received.header("authorization") == f"Bearer {STORED}"
        assert secret.encode() not in str(received.headers).encode() + received.raw_body
    return response.status_code


def test_keys_reach_every_ingress_and_revocation_follows(kafka_bootstrap, fake_openai, tmp_path):
    asyncio.run(create_topics(kafka_bootstrap, partitions=3))
    env = {"WARDEN_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "WARDEN_OPENAI_BASE_URL": fake_openai.url + "/v1"}
    console, console_url = start(tmp_path, "console", "console", env)
    first, first_url = start(tmp_path, "ingress", "ingress-1", env)
    second, second_url = start(tmp_path, "ingress", "ingress-2", env)
    ingresses = [first_url, second_url]
    took: dict[str, float] = {}
    try:
        created = httpx.post(
            f"{console_url}/api/profiles",
            json={"name": "keyed", "auth": "managed", "credentials": {"openai": STORED}},
        )
        assert created.status_code == 201, created.text
        profile_id = created.json()["id"]
        made = httpx.post(f"{console_url}/api/keys", json={"profile_id": profile_id, "agent_id": "kafka-agent"})
        assert made.status_code == 201, made.text
        key = made.json()
        took["create"] = max(
            until(lambda u=u: status(u, key["secret"], fake_openai) == 200, f"key on {u}") for u in ingresses
        )
        rotated = httpx.post(f"{console_url}/api/keys/{key['id']}/rotate", json={"grace_seconds": 0})
        assert rotated.status_code == 200, rotated.text
        fresh = rotated.json()["secret"]
        took["rotate"] = max(
            until(
                lambda u=u: status(u, key["secret"], fake_openai) == 401 and status(u, fresh, fake_openai) == 200,
                f"rotation on {u}",
            )
            for u in ingresses
        )
        assert httpx.delete(f"{console_url}/api/keys/{key['id']}").status_code == 204
        took["revoke"] = max(
            until(lambda u=u: status(u, fresh, fake_openai) == 401, f"revocation on {u}") for u in ingresses
        )
    finally:
        for process in (first, second, console):
            process.interrupt()
    print("key changes reaching both ingresses (s):", {k: round(v, 3) for k, v in took.items()})
