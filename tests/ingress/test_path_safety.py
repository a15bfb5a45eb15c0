"""A forwarded path never climbs above the provider's base path: ``..`` and ``.`` segments (encoded once, twice, or
not at all, with ``;params``) and encoded slashes or backslashes are a 400 in the provider's own error shape, and
nothing reaches the upstream. Paths are sent raw (``http.client``), as an attacker would: HTTP clients and SDKs
normalise ``..`` before sending."""

from __future__ import annotations

import http.client
import json

import pytest

from tests.conftest import API_KEY, CUSTOM_PROVIDER

ATTACKS = [
    "%2e%2e/%2e%2e/admin",
    "%2E%2E/%2E%2E/%2E%2E/admin",
    "../../admin",
    ".%2e/.%2e/admin",
    "%252e%252e/%252e%252e/admin",
    "..%2fadmin",
    "..%2Fadmin",
    "chat%2fcompletions",
    "..;/admin",
    "./admin",
    "v1%5c..%5c..%5cadmin",
    "default/%2e%2e/%2e%2e/admin",
    "chat/completions/%2e%2e/%2e%2e/%2e%2e/admin",
    "%25252e%25252e/admin",
    "a%00b/admin",
]
PROVIDERS = ["openai", "anthropic", "gemini", CUSTOM_PROVIDER]


def fake_of(provider: str, fakes: dict[str, object]):
    return fakes[provider]


@pytest.fixture
def fakes(fake_openai, fake_anthropic, fake_gemini, fake_compatible) -> dict[str, object]:
    return {"openai": fake_openai, "anthropic": fake_anthropic, "gemini": fake_gemini, CUSTOM_PROVIDER: fake_compatible}


def send_raw(warden, method: str, path: str) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", warden.port, timeout=10)
    try:
        body = (
            json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
            if method == "POST"
            else None
        )
        headers = {"Authorization": f"Bearer {API_KEY}", "x-api-key": API_KEY, "x-goog-api-key": API_KEY}
        if body:
            headers["Content-Type"] = "application/json"
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def assert_provider_error(provider: str, payload: dict) -> str:
    if provider == "anthropic":
        assert payload["type"] == "error" and payload["error"]["type"] == "invalid_request_error"
        return payload["error"]["message"]
    if provider == "gemini":
        assert payload["error"]["code"] == 400 and payload["error"]["status"] == "INVALID_ARGUMENT"
        return payload["error"]["message"]
    assert payload["error"]["type"]
    return payload["error"]["message"]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_path_that_would_climb_is_a_400_and_never_forwarded(warden, fakes, provider, method):
    fake = fake_of(provider, fakes)
    before = len(fake.received)
    for attack in ATTACKS:
        status, payload = send_raw(warden, method, f"/v1/{provider}/{attack}")
        assert status == 400, (attack, payload)
        message = assert_provider_error(provider, payload)
        assert "request path" in message, attack
    assert len(fake.received) == before, [r.path for r in fake.received[before:]]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_ordinary_paths_still_reach_the_upstream_below_its_base(warden, fakes, provider):
    fake = fake_of(provider, fakes)
    paths = {
        "openai": "/v1/openai/models",
        CUSTOM_PROVIDER: f"/v1/{CUSTOM_PROVIDER}/models",
        "anthropic": "/v1/anthropic/v1/models",
        "gemini": "/v1/gemini/v1beta/models/gemini-2.5-flash%3AgenerateContent",
    }
    method = "POST" if provider == "gemini" else "GET"
    status, _ = send_raw(warden, method, paths[provider])
    assert status < 500
    assert fake.last.path.startswith(("/v1/", "/v1beta/"))
