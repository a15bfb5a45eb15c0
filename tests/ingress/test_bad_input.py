"""Bad input gets a clear error in OpenAI's envelope and the right status; nothing crashes."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import API_KEY
from tests.support.agents import new_agent

BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def post(warden, *, content: bytes | None = None, json: dict | None = None, headers: dict | None = None):
    return httpx.post(
        f"{warden.url}/v1/openai/chat/completions",
        content=content,
        json=json,
        headers={"Authorization": f"Bearer {API_KEY}", **(headers or {})},
        timeout=10,
    )


def assert_openai_error(response: httpx.Response, status: int, fragment: str) -> None:
    assert response.status_code == status
    error = response.json()["error"]
    assert fragment in error["message"]
    assert error["type"]
    assert response.headers["x-warden-interaction-id"]


def test_malformed_json_is_a_400(warden):
    agent = new_agent()
    response = post(warden, content=b'{"model": "gpt-4o", "messages": [', headers={"X-Archestra-Agent-Id": agent})
    assert_openai_error(response, 400, "not valid JSON")
    (item,) = warden.wait_for(lambda i: i["status"] == 400, agent_id=agent)
    assert "not valid JSON" in item["error"]


def test_a_body_over_the_limit_is_a_413(warden):
    huge = {**BODY, "messages": [{"role": "user", "content": "x" * (2 * 1024 * 1024)}]}
    assert_openai_error(post(warden, json=huge), 413, "larger than")


@pytest.mark.parametrize(
    ("header", "value", "fragment"),
    [
        ("X-Archestra-Agent-Id", "a" * 129, "longer than 128"),
        ("X-Archestra-User-Id", "bob smith", "may only contain"),
        ("X-Archestra-Session-Id", "<script>", "may only contain"),
    ],
)
def test_bad_attribution_headers_are_a_400(warden, header, value, fragment):
    assert_openai_error(post(warden, json=BODY, headers={header: value}), 400, fragment)


def test_an_unknown_provider_is_a_404(warden):
    response = httpx.post(f"{warden.url}/v1/nosuchprovider/chat/completions", json=BODY, timeout=10)
    assert_openai_error(response, 404, "no provider")


def test_the_proxy_keeps_serving_after_bad_input(warden):
    for junk in (b"", b"\xff\xfe", b"[1,2", b"null"):
        assert post(warden, content=junk).status_code < 500
    assert post(warden, json=BODY).status_code == 200


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("X-Archestra-Agent-Id", "agent_id"),
        ("X-Archestra-User-Id", "user_id"),
        ("X-Archestra-Session-Id", "session_id"),
    ],
)
def test_attribution_of_exactly_the_limit_is_kept_and_one_more_is_a_400(warden, header, field):
    agent = new_agent()
    longest = (agent + "-" + "x" * 128)[:128]
    headers = {"X-Archestra-Agent-Id": agent, header: longest}
    response = post(warden, json=BODY, headers=headers)
    assert response.status_code == 200, response.text
    (item,) = warden.wait_for(lambda i: i["status"] == 200, **{field: longest})
    assert item[field] == longest and len(item[field]) == 128
    assert_openai_error(post(warden, json=BODY, headers={**headers, header: longest + "y"}), 400, "longer than 128")
