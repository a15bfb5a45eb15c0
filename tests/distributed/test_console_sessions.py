"""Login sessions across console processes: a session from one ``warden console`` opens the other (same admin token),
and a logout on one ends it on both (the revocation travels through the replicated configuration on Kafka, as
profiles do)."""

from __future__ import annotations

import asyncio
import time

import httpx

from plumbing.bus.topics_admin import create_topics
from tests.support.processes import WardenProcess
from tests.support.warden_server import free_port

TOKEN = "shared-admin-token-0123456789"


def console(kafka_bootstrap: str, data_dir) -> tuple[WardenProcess, str]:
    port = free_port()
    env = {
        "WARDEN_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "WARDEN_DATA_DIR": str(data_dir),
        "WARDEN_HOST": "127.0.0.1",
        "WARDEN_CONSOLE_PORT": str(port),
        "WARDEN_ADMIN_TOKEN": TOKEN,
    }
    url = f"http://127.0.0.1:{port}"
    return WardenProcess(["console"], env, ready_url=f"{url}/healthz").start(), url


def test_a_session_opens_every_console_and_a_logout_ends_it_everywhere(kafka_bootstrap, tmp_path):
    asyncio.run(create_topics(kafka_bootstrap, partitions=1))
    first, first_url = console(kafka_bootstrap, tmp_path / "a")
    second, second_url = console(kafka_bootstrap, tmp_path / "b")
    try:
        login = httpx.post(f"{first_url}/login", data={"token": TOKEN}, headers={"Origin": first_url}, timeout=10)
        assert login.status_code == 303, first.output()
        cookies = {"warden_session": login.cookies["warden_session"]}
        assert httpx.get(f"{second_url}/api/interactions", cookies=cookies, timeout=10).status_code == 200

        logout = httpx.post(f"{first_url}/logout", cookies=cookies, headers={"Origin": first_url}, timeout=10)
        assert logout.status_code == 303
        assert httpx.get(f"{first_url}/api/interactions", cookies=cookies, timeout=10).status_code == 401
        deadline = time.monotonic() + 30
        while httpx.get(f"{second_url}/api/interactions", cookies=cookies, timeout=10).status_code != 401:
            assert time.monotonic() < deadline, "the other console still accepts the session"
            time.sleep(0.2)
        # Profiles travel the same way: made on one console, served by the other.
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        made = httpx.post(f"{first_url}/api/profiles", json={"name": "replicated"}, headers=bearer, timeout=10)
        assert made.status_code == 201
        profile_url = f"{second_url}/api/profiles/{made.json()['id']}"
        while httpx.get(profile_url, headers=bearer, timeout=10).status_code != 200:
            assert time.monotonic() < deadline + 30, "the other console does not know the profile"
            time.sleep(0.2)
    finally:
        first.stop()
        second.stop()
