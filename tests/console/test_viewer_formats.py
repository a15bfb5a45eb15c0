"""The detail page (/logs/{id}) for every wire format, streamed and not, as the official SDKs speak them: the
conversation and the answer, the provider's error messages, and bodies no adapter can read."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable

import anthropic
import httpx
import openai
import pytest
from google import genai

from tests.conftest import API_KEY, CUSTOM_PROVIDER
from tests.support.agents import attribution, new_agent
from tests.support.detail_page import section
from tests.support.guardrails import make_profile

Base = Callable[[str], str]
"""The base URL of a provider (under a profile or not)."""
Ask = Callable[[Base, str, str, bool], None]
"""Send one prompt (base URLs, agent, prompt, streamed); errors the SDK raises are the test's to look at."""


def _openai(base: Base, provider: str, agent: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base(provider), api_key=API_KEY, default_headers=attribution(agent), max_retries=0)


def openai_chat(base: Base, agent: str, prompt: str, stream: bool, provider: str = "openai") -> None:
    api = _openai(base, provider, agent)
    answer = api.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": prompt}], stream=stream)
    if stream:
        list(answer)


def custom_chat(base: Base, agent: str, prompt: str, stream: bool) -> None:
    openai_chat(base, agent, prompt, stream, provider=CUSTOM_PROVIDER)


def openai_responses(base: Base, agent: str, prompt: str, stream: bool) -> None:
    answer = _openai(base, "openai", agent).responses.create(model="gpt-4.1", input=prompt, stream=stream)
    if stream:
        list(answer)


def anthropic_messages(base: Base, agent: str, prompt: str, stream: bool) -> None:
    api = anthropic.Anthropic(
        base_url=base("anthropic"), api_key=API_KEY, default_headers=attribution(agent), max_retries=0
    )
    messages = [{"role": "user", "content": prompt}]
    answer = api.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=messages, stream=stream)
    if stream:
        list(answer)


def gemini(base: Base, agent: str, prompt: str, stream: bool) -> None:
    options = {"base_url": base("gemini"), "api_version": "v1beta", "headers": attribution(agent)}
    client = genai.Client(api_key=API_KEY, http_options=options)  # kept: its models close with it
    if stream:
        list(client.models.generate_content_stream(model="gemini-2.5-flash", contents=prompt))
    else:
        client.models.generate_content(model="gemini-2.5-flash", contents=prompt)


FORMATS: dict[str, tuple[Ask, str]] = {
    "openai-chat": (openai_chat, "OpenAI chat completions"),
    "custom-chat": (custom_chat, "OpenAI chat completions"),
    "openai-responses": (openai_responses, "OpenAI Responses"),
    "anthropic": (anthropic_messages, "Anthropic messages"),
    "gemini": (gemini, "Gemini generateContent"),
}


def direct(warden) -> Base:
    return lambda provider: f"{warden.url}/v1/{provider}"


def detail_page(warden, agent: str) -> tuple[dict, str]:
    (item,) = warden.wait_for(lambda i: i["status"] is not None, agent_id=agent)
    response = httpx.get(f"{warden.url}/logs/{item['interaction_id']}", timeout=10)
    assert response.status_code == 200
    return warden.detail(item["interaction_id"]), response.text


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("client", list(FORMATS))
def test_each_format_shows_its_conversation_and_answer(warden, client, stream):
    ask, wire_format = FORMATS[client]
    agent = new_agent()
    prompt = f"tell me about {agent}"
    ask(direct(warden), agent, prompt, stream)
    item, page = detail_page(warden, agent)
    assert item["stream"] is stream
    conversation, answer = section(page, "conversation"), section(page, "answer")
    assert wire_format in conversation
    assert prompt in conversation and "echo:" not in conversation
    assert f"echo: {prompt}" in answer
    assert "can read" not in page  # no fallback to the raw body


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("client", list(FORMATS))
def test_each_format_shows_the_providers_error_message(warden, client, stream):
    ask, _ = FORMATS[client]
    agent = new_agent()
    with pytest.raises(Exception):  # noqa: B017 - each SDK raises its own error type
        ask(direct(warden), agent, "fail please [[error:400]]", stream)
    item, page = detail_page(warden, agent)
    assert item["status"] == 400
    body = json.loads(item["response_body"])
    expected = (body[0] if isinstance(body, list) else body)["error"]["message"]
    assert expected and expected in section(page, "answer")
    assert "fail please" in section(page, "conversation")


@pytest.mark.parametrize("client", list(FORMATS))
def test_an_error_inside_a_stream_is_shown_after_what_arrived(warden, client):
    ask, _ = FORMATS[client]
    agent = new_agent()
    with contextlib.suppress(Exception):  # the SDKs raise on the error event, which is what is recorded
        ask(direct(warden), agent, "one two three four five six [[stream_error]]", True)
    item, page = detail_page(warden, agent)
    assert item["status"] == 200 and item["stream"] is True
    answer = section(page, "answer")
    assert 'class="error"' in page.split('<section id="answer">')[1].split("</section>")[0]
    assert "echo:" in answer


@pytest.fixture(scope="module")
def redacting(warden) -> str:
    return make_profile(warden, "permissive", name="viewer-redaction", redact_secrets=True)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("client", list(FORMATS))
def test_a_masked_secret_stays_masked_on_the_page(warden, redacting, client, stream):
    ask, _ = FORMATS[client]
    agent = new_agent()
    secret = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0" * 3
    ask(lambda provider: f"{warden.url}/v1/{provider}/{redacting}", agent, f"my key is {secret}, keep it", stream)
    _, page = detail_page(warden, agent)
    assert secret not in page
    assert "[REDACTED:" in section(page, "conversation")
    assert "keep it" in section(page, "answer")
