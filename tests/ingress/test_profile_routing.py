"""The segment after the provider is a profile reference unless it is one of the provider's own paths: a reference
that names no profile is a 404 in the provider's shape, never the default profile, and nothing reaches the upstream.
Profiles resolve by id or by a name exactly one profile carries (case-sensitively)."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors

from tests.conftest import API_KEY
from tests.support.agents import attribution, new_agent


def create_profile(warden, name: str) -> str:
    response = httpx.post(f"{warden.url}/api/profiles", json={"name": name, "mode": "restrictive"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def chat_through(warden, segment: str, agent: str):
    client = openai.OpenAI(
        base_url=f"{warden.url}/v1/openai/{segment}", api_key=API_KEY, default_headers=attribution(agent), max_retries=0
    )
    return client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])


def test_an_unknown_profile_name_is_a_404_and_nothing_is_forwarded(warden, fake_openai):
    before = len(fake_openai.received)
    with pytest.raises(openai.NotFoundError) as caught:
        chat_through(warden, "support-bot", new_agent())
    assert "unknown profile support-bot" in caught.value.message
    assert len(fake_openai.received) == before
    assert not any("support-bot" in received.path for received in fake_openai.received)


def test_a_unique_profile_name_resolves_to_its_profile(warden, fake_openai):
    name = f"support-bot-{new_agent()}"
    profile_id = create_profile(warden, name)
    agent = new_agent()
    answer = chat_through(warden, name, agent)
    assert answer.choices[0].message.content == "echo: hi"
    assert fake_openai.last.path == "/v1/chat/completions"
    (item,) = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent)
    assert item["profile_id"] == profile_id
    with pytest.raises(openai.NotFoundError):
        chat_through(warden, name.upper(), new_agent())  # names are case-sensitive


def test_a_name_two_profiles_share_refers_to_neither(warden):
    name = f"twin-{new_agent()}"
    first, second = create_profile(warden, name), create_profile(warden, name)
    with pytest.raises(openai.NotFoundError):
        chat_through(warden, name, new_agent())
    assert chat_through(warden, first, new_agent()).choices and chat_through(warden, second.upper(), new_agent())


def test_provider_paths_still_mean_the_default_profile(warden, fake_openai, fake_anthropic, fake_gemini):
    agent = new_agent()
    assert chat_through(warden, "", agent).choices[0].message.content == "echo: hi"
    client = anthropic.Anthropic(base_url=f"{warden.url}/v1/anthropic", api_key=API_KEY, max_retries=0)
    message = client.messages.create(
        model="claude-sonnet-4-6", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content[0].text == "echo: hi"
    gemini = genai.Client(
        api_key=API_KEY, http_options={"base_url": f"{warden.url}/v1/gemini", "api_version": "v1beta"}
    )
    assert gemini.models.generate_content(model="gemini-2.5-flash", contents="hi").text == "echo: hi"
    assert fake_gemini.last.path.startswith("/v1beta/models/gemini-2.5-flash")
    items = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent)
    assert items[0]["profile_id"] == "default"


def test_an_unknown_profile_is_a_404_in_anthropic_and_gemini_shapes(warden, fake_anthropic, fake_gemini):
    client = anthropic.Anthropic(base_url=f"{warden.url}/v1/anthropic/support-bot", api_key=API_KEY, max_retries=0)
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="claude-sonnet-4-6", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    assert missing.value.body["error"]["type"] == "not_found_error"
    gemini = genai.Client(
        api_key=API_KEY, http_options={"base_url": f"{warden.url}/v1/gemini/support-bot", "api_version": "v1beta"}
    )
    with pytest.raises(genai_errors.ClientError) as caught:
        gemini.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert caught.value.code == 404 and caught.value.status == "NOT_FOUND"
    assert not any("support-bot" in r.path for r in [*fake_anthropic.received, *fake_gemini.received])
