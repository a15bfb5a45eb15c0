"""``warden serve`` as users run it: flags, environment, Ctrl-C draining every accepted event to storage."""

from __future__ import annotations

import concurrent.futures

import httpx
import openai
import pytest

from tests.conftest import API_KEY
from tests.support.agents import attribution, new_agent
from tests.support.serve_process import ServeProcess


@pytest.fixture
def serve(tmp_path, fake_openai, request):
    started: list[ServeProcess] = []

    def start(env: dict[str, str] | None = None) -> ServeProcess:
        process = ServeProcess(
            tmp_path / "data", env={"WARDEN_OPENAI_BASE_URL": fake_openai.url + "/v1", **(env or {})}
        )
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.kill()


def test_ctrl_c_drains_every_accepted_event_to_storage(serve):
    agent = new_agent()
    process = serve()
    sdk = openai.OpenAI(
        base_url=f"{process.url}/v1/openai", api_key=API_KEY, default_headers=attribution(agent), max_retries=0
    )
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda n: sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"n{n}"}]),
                range(40),
            )
        )
    assert len(answers) == 40
    output = process.interrupt()
    assert "draining" in output and "Warden stopped" in output

    restarted = serve()
    items = httpx.get(f"{restarted.url}/api/interactions", params={"agent_id": agent, "limit": 100}).json()["items"]
    assert len(items) == 40
    assert all(i["status"] == 200 for i in items)


def test_an_upstream_that_does_not_answer_in_time_is_a_504(serve):
    process = serve({"WARDEN_UPSTREAM_READ_TIMEOUT_S": "0.5"})
    sdk = openai.OpenAI(base_url=f"{process.url}/v1/openai", api_key=API_KEY, max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "[[slow:3]] hi"}])
    assert caught.value.status_code == 504
    assert caught.value.body["type"] == "upstream_timeout"


def test_the_admin_token_guards_the_read_api(serve):
    process = serve({"WARDEN_ADMIN_TOKEN": "let-me-in"})
    assert httpx.get(f"{process.url}/api/interactions").status_code == 401
    wrong = httpx.get(f"{process.url}/api/interactions", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    right = httpx.get(f"{process.url}/api/interactions", headers={"Authorization": "Bearer let-me-in"})
    assert right.status_code == 200 and right.json() == {"items": [], "next_cursor": None}
    # The proxy itself is not behind the admin token: agents use their provider credentials.
    sdk = openai.OpenAI(base_url=f"{process.url}/v1/openai", api_key=API_KEY, max_retries=0)
    assert sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
