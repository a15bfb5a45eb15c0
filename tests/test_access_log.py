"""The access log (``WARDEN_ACCESS_LOG``): one JSON line per proxied request, with the status the client got and the
interaction id it can be found under, never the query string; Warden's own 5xx answers are warnings either way."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.conftest import API_KEY
from tests.support.agents import attribution, new_agent
from tests.support.serve_process import ServeProcess

GEMINI_KEY = "AIzaSyQueryStringKey0123456789abcdefgh"


@pytest.fixture
def serve(tmp_path, fake_openai, fake_gemini):
    started: list[ServeProcess] = []

    def start(access_log: bool) -> ServeProcess:
        env = {
            "WARDEN_OPENAI_BASE_URL": fake_openai.url + "/v1",
            "WARDEN_GEMINI_BASE_URL": fake_gemini.base_url,
            "WARDEN_CUSTOM_PROVIDERS": json.dumps({"deadend": "http://127.0.0.1:9/v1"}),
        }
        if access_log:
            env["WARDEN_ACCESS_LOG"] = "true"
        process = ServeProcess(tmp_path / f"data-{len(started)}", env=env)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.kill()


def traffic(url: str) -> dict[str, tuple[str, str, int, str]]:
    """Three requests: a completion, a Gemini call with its key in the query string, one to an unreachable upstream.
    Returns (method, path, status, interaction id) of each as the client saw them."""
    seen = {}
    sdk = openai.OpenAI(
        base_url=f"{url}/v1/openai", api_key=API_KEY, default_headers=attribution(new_agent()), max_retries=0
    )
    raw = sdk.chat.completions.with_raw_response.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    seen["chat"] = ("POST", "/v1/openai/chat/completions", raw.status_code, raw.headers["x-warden-interaction-id"])
    path = "/v1/gemini/v1beta/models/gemini-2.5-flash:generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    answer = httpx.post(f"{url}{path}", params={"key": GEMINI_KEY}, json=body, timeout=30)
    seen["gemini"] = ("POST", path, answer.status_code, answer.headers["x-warden-interaction-id"])
    dead = openai.OpenAI(base_url=f"{url}/v1/deadend", api_key=API_KEY, max_retries=0)
    with pytest.raises(openai.APIStatusError) as failed:
        dead.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    response = failed.value.response
    seen["dead"] = (
        "POST",
        "/v1/deadend/chat/completions",
        response.status_code,
        response.headers["x-warden-interaction-id"],
    )
    assert [s[2] for s in seen.values()] == [200, 200, 502]
    return seen


def log_lines(output: str) -> list[dict]:
    lines = []
    for line in output.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_one_access_line_per_proxied_request(serve):
    process = serve(access_log=True)
    seen = traffic(process.url)
    httpx.get(f"{process.url}/api/interactions")  # the console is not the proxy: no access line
    output = process.interrupt()
    assert GEMINI_KEY not in output

    access = [line for line in log_lines(output) if line["logger"] == "warden.access"]
    assert sorted((a["method"], a["path"], a["status"], a["interaction_id"]) for a in access) == sorted(seen.values())
    assert all(a["level"] == "info" and a["duration_ms"] > 0 for a in access)
    # The 5xx Warden answered itself is also a warning, with the reason.
    (warning,) = [line for line in log_lines(output) if line["level"] == "warning" and line.get("status") == 502]
    assert warning["interaction_id"] == seen["dead"][3] and "could not be reached" in warning["msg"]


def test_without_the_access_log_only_warden_s_own_5xx_are_logged(serve):
    process = serve(access_log=False)
    seen = traffic(process.url)
    lines = log_lines(process.interrupt())
    assert not [line for line in lines if line["logger"] == "warden.access"]
    ids = {line.get("interaction_id") for line in lines}
    assert seen["chat"][3] not in ids and seen["gemini"][3] not in ids
    (warning,) = [line for line in lines if line["level"] == "warning" and line.get("status") == 502]
    assert warning["interaction_id"] == seen["dead"][3]
