"""No provider credential in any recorded field or log line, in any failure: an upstream that answers a malformed
status line (the HTTP client's error names the URL, ``?key=`` included), a key written percent-encoded into the
path, an exception logged with the URL in it."""

from __future__ import annotations

import json
import logging
import sys

import httpx
import pytest

from plumbing.logs import JsonFormatter
from services.detection.credentials import scrub_credentials
from tests.conftest import API_KEY, CUSTOM_PROVIDER
from tests.support.agents import attribution, new_agent

QUERY_KEY = "AIzaSy" + "Q7x9Kq2Lm8Np4Rs6Tu0Vw1Yz3Bc5De7Fg9H"  # made up, Google's shape
BROKEN = "[[bad_status_line]]"

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": BROKEN}]}
ROUTES = {
    "openai_chat": ("openai/chat/completions", CHAT, {"Authorization": f"Bearer {API_KEY}"}),
    "openai_responses": (
        "openai/responses",
        {"model": "gpt-4o", "input": BROKEN},
        {"Authorization": f"Bearer {API_KEY}"},
    ),
    "anthropic": (
        "anthropic/v1/messages",
        {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": BROKEN}]},
        {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"},
    ),
    "gemini": (
        "gemini/v1beta/models/gemini-2.0-flash:{method}",
        {"contents": [{"role": "user", "parts": [{"text": BROKEN}]}]},
        {},
    ),
    "custom": (f"{CUSTOM_PROVIDER}/chat/completions", CHAT, {"Authorization": f"Bearer {API_KEY}"}),
    "azure": ("azure/openai/deployments/chat-prod/chat/completions", CHAT, {"api-key": API_KEY}),
}


def _record(warden, agent: str) -> dict:
    (item,) = warden.wait_for(lambda i: i["status"] is not None, agent_id=agent)
    return warden.detail(item["interaction_id"])


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("name", list(ROUTES))
def test_a_malformed_status_line_records_no_query_key(warden, name, stream):
    path, body, headers = ROUTES[name]
    method = "streamGenerateContent" if stream else "generateContent"
    query = f"?alt=sse&key={QUERY_KEY}" if stream else f"?key={QUERY_KEY}"
    if name != "gemini":
        body = {**body, "stream": stream}
    agent = new_agent()
    response = httpx.post(
        f"{warden.url}/v1/{path.format(method=method)}{query}",
        json=body,
        headers={**headers, **attribution(agent)},
        timeout=30,
    )
    assert response.status_code == 502
    detail = _record(warden, agent)
    assert detail["status"] == 502 and detail["error"]
    assert "key=[REDACTED]" in detail["error"]  # the URL is still named, its key is not
    assert QUERY_KEY not in json.dumps(detail)
    assert QUERY_KEY not in json.dumps(warden.interactions(agent_id=agent))
    assert API_KEY not in json.dumps(detail)


@pytest.mark.parametrize("encoded", ["%3Fkey=", "%3fkey=", "%3Fkey%3D", "%253Fkey="])
def test_a_key_percent_encoded_into_the_path_is_not_stored_in_the_route(warden, encoded):
    agent = new_agent()
    httpx.post(
        f"{warden.url}/v1/gemini/v1beta/models/gemini-2.0-flash:generateContent{encoded}{QUERY_KEY}",
        json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        headers=attribution(agent),
        timeout=30,
    )
    detail = _record(warden, agent)
    assert detail["route"].startswith("/v1beta/models/gemini-2.0-flash:generateContent")
    assert QUERY_KEY not in json.dumps(detail)
    assert QUERY_KEY not in json.dumps(warden.interactions(agent_id=agent))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "url='http://h/v1beta/m:generateContent?alt=sse&key=SECRET1'",
            "url='http://h/v1beta/m:generateContent?alt=sse&key=[REDACTED]'",
        ),
        ("/models/x%3Fkey=SECRET1", "/models/x%3Fkey=[REDACTED]"),
        ("/models/x%3fapi-key%3dSECRET1", "/models/x%3fapi-key%3d[REDACTED]"),
        (
            "{'Authorization': 'Bearer SECRET1', 'x-api-key': 'SECRET1'}",
            "{'Authorization': '[REDACTED]', 'x-api-key': '[REDACTED]'}",
        ),
        ("x-goog-api-key: SECRET1\r\n", "x-goog-api-key: [REDACTED]\r\n"),
        (
            "cannot reach http://warden:SECRET1@clickhouse:8123/",
            "cannot reach http://warden:[REDACTED]@clickhouse:8123/",
        ),
        ("the monkey=banana and turkey: fine", "the monkey=banana and turkey: fine"),
        ("refused wk_" + "Zq3x9Lm2Np8Rt4Vw6Yb1Cd5Ef7Gh0Jk2Mn4Pq6St8Uv", "refused [REDACTED]"),
        ("awk_ward is not a key", "awk_ward is not a key"),
    ],
)
def test_scrubbing(text, expected):
    assert scrub_credentials(text) == expected


def test_a_logged_exception_naming_the_url_leaves_no_key():
    formatter = JsonFormatter(scrub_credentials)
    try:
        raise ConnectionError(f"400, message='Invalid status line', url='http://up/x?key={QUERY_KEY}'")
    except ConnectionError:
        record = logging.LogRecord(
            "warden", logging.ERROR, __file__, 1, "failed on %s", (f"/x?key={QUERY_KEY}",), sys.exc_info()
        )
    record.fields = {"url": f"http://up/x?key={QUERY_KEY}", "count": 3}
    line = json.loads(formatter.format(record))
    assert QUERY_KEY not in json.dumps(line)
    assert line["count"] == 3 and "key=[REDACTED]" in line["exc"]
