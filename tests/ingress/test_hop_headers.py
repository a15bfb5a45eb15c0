"""Headers that belong to one connection or to Warden's own origin do not cross the proxy: the browser's cookies
(the console's login session among them) never reach a provider, a provider's ``Set-Cookie`` never lands on Warden's
origin, and headers named in ``Connection`` stop at the hop they were meant for, in both directions. Every wire
format, through the official SDKs; streamed and not."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest
from google import genai

from tests.conftest import API_KEY, CUSTOM_PROVIDER
from tests.support.agents import attribution, new_agent

SESSION = "warden_session=abc.123.signature"
LEAKY = {
    "Cookie": f"{SESSION}; theme=dark",
    "Connection": "keep-alive, X-Hop-Secret",
    "X-Hop-Secret": "for-warden-only",
}
UPSTREAM_EXTRA = {
    "Set-Cookie": "warden_session=planted; Path=/",
    "Connection": "X-Upstream-Hop",
    "X-Upstream-Hop": "internal",
    "X-Upstream-Kept": "yes",
}


def openai_sdk(warden, provider: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{warden.url}/v1/{provider}",
        api_key=API_KEY,
        default_headers={**attribution(new_agent()), **LEAKY},
        max_retries=0,
    )


def call_openai(warden, provider: str, stream: bool) -> None:
    messages = [{"role": "user", "content": "hello"}]
    answer = openai_sdk(warden, provider).chat.completions.create(model="gpt-4o", messages=messages, stream=stream)
    if stream:
        list(answer)


def call_responses(warden, provider: str, stream: bool) -> None:
    answer = openai_sdk(warden, provider).responses.create(model="gpt-4o", input="hello", stream=stream)
    if stream:
        list(answer)


def call_anthropic(warden, _: str, stream: bool) -> None:
    sdk = anthropic.Anthropic(
        base_url=f"{warden.url}/v1/anthropic",
        api_key=API_KEY,
        default_headers={**attribution(new_agent()), **LEAKY},
        max_retries=0,
    )
    answer = sdk.messages.create(
        model="claude-sonnet-4-6", max_tokens=64, messages=[{"role": "user", "content": "hello"}], stream=stream
    )
    if stream:
        list(answer)


def call_gemini(warden, _: str, stream: bool) -> None:
    options = {
        "base_url": f"{warden.url}/v1/gemini",
        "api_version": "v1beta",
        "headers": {**attribution(new_agent()), **LEAKY},
    }
    sdk = genai.Client(api_key=API_KEY, http_options=options)
    if stream:
        list(sdk.models.generate_content_stream(model="gemini-2.5-flash", contents="hello"))
    else:
        sdk.models.generate_content(model="gemini-2.5-flash", contents="hello")


CASES = {
    "openai": ("openai", call_openai),
    "responses": ("openai", call_responses),
    "anthropic": ("anthropic", call_anthropic),
    "gemini": ("gemini", call_gemini),
    CUSTOM_PROVIDER: (CUSTOM_PROVIDER, call_openai),
}


@pytest.fixture
def fakes(fake_openai, fake_anthropic, fake_gemini, fake_compatible) -> dict[str, object]:
    return {"openai": fake_openai, "anthropic": fake_anthropic, "gemini": fake_gemini, CUSTOM_PROVIDER: fake_compatible}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("case", list(CASES))
def test_cookies_and_connection_named_headers_do_not_reach_the_provider(warden, fakes, case, stream):
    provider, call = CASES[case]
    call(warden, provider, stream)
    received = fakes[provider].last.headers
    assert "cookie" not in received
    assert "x-hop-secret" not in received
    assert SESSION not in str(received)
    # What the provider needs still arrives.
    assert API_KEY in (
        received.get("authorization", "") + received.get("x-api-key", "") + received.get("x-goog-api-key", "")
    )


ROUTES = {
    "openai": ("/v1/openai/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
    "anthropic": (
        "/v1/anthropic/v1/messages",
        {"model": "claude-sonnet-4-6", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]},
    ),
    "gemini": (
        "/v1/gemini/v1beta/models/gemini-2.5-flash:generateContent",
        {"contents": [{"parts": [{"text": "hi"}]}]},
    ),
    CUSTOM_PROVIDER: (
        f"/v1/{CUSTOM_PROVIDER}/chat/completions",
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
    ),
}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("provider", list(ROUTES))
def test_the_providers_cookies_and_connection_named_headers_do_not_reach_the_client(warden, fakes, provider, stream):
    path, body = ROUTES[provider]
    if stream and provider == "gemini":
        path = path.replace(":generateContent", ":streamGenerateContent?alt=sse")
    elif stream:
        body = {**body, "stream": True}
    headers = {
        "Authorization": f"Bearer {API_KEY}",
        "x-api-key": API_KEY,
        "x-goog-api-key": API_KEY,
        "anthropic-version": "2023-06-01",
    }
    url = f"{warden.url}{path}"
    with (
        fakes[provider].answering_with_headers(UPSTREAM_EXTRA),
        httpx.stream("POST", url, json=body, headers=headers, timeout=10) as response,
    ):
        response.read()
    assert response.status_code == 200, response.text
    assert "set-cookie" not in response.headers
    assert "x-upstream-hop" not in response.headers
    assert response.headers["x-upstream-kept"] == "yes"  # the fake did add its headers
