"""A model's refusal is part of its answer: a secret or personal data it carries is reported by the guard like any
answer text, in OpenAI chat (``message.refusal``, streamed ``delta.refusal``), the custom providers that speak it,
and the Responses API (``refusal`` content parts, streamed ``response.refusal.delta``), through the official openai
SDK. A refusal sent back in a conversation's history is read too, and masked on its way out by a redacting profile.

The fake model refuses when asked (``[[refusal]]``) and quotes the prompt in its refusal, so the prompt's secret is
both in the request and in the refusal; the findings are told apart by where they are (``response.text``)."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import API_KEY, CUSTOM_PROVIDER
from tests.support.agents import attribution, new_agent
from tests.support.guardrails import make_profile
from tests.support.violations import violations_at

EMAIL = "ana.garcia@uni-heidelberg.de"


@pytest.fixture(scope="module")
def profile(warden) -> str:
    response = httpx.post(f"{warden.url}/api/profiles", json={"name": "refusals"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture(scope="module")
def redacting(warden) -> str:
    return make_profile(warden, "restrictive", name="refusals-redacting", redact_secrets=True)


def client(warden, provider: str, profile: str, agent: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{warden.url}/v1/{provider}/{profile}",
        api_key=API_KEY,
        default_headers=attribution(agent),
        max_retries=0,
    )


def refusal_through_sdk(sdk: openai.OpenAI, fmt: str, prompt: str, stream: bool) -> str:
    """The refusal as the client reads it, through the SDK's own refusal fields and events."""
    if fmt in ("chat", "custom"):
        messages = [{"role": "user", "content": prompt}]
        if not stream:
            message = sdk.chat.completions.create(model="gpt-4o", messages=messages).choices[0].message
            assert message.content is None
            return message.refusal or ""
        chunks = sdk.chat.completions.create(model="gpt-4o", messages=messages, stream=True)
        deltas = [chunk.choices[0].delta for chunk in chunks if chunk.choices]
        assert not any(delta.content for delta in deltas)
        return "".join(delta.refusal or "" for delta in deltas)
    if not stream:
        response = sdk.responses.create(model="gpt-4o", input=prompt)
        assert response.output_text == ""
        return "".join(part.refusal for item in response.output for part in item.content if part.type == "refusal")
    events = list(sdk.responses.create(model="gpt-4o", input=prompt, stream=True))
    assert not any(event.type == "response.output_text.delta" for event in events)
    return "".join(event.delta for event in events if event.type == "response.refusal.delta")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("fmt", ["chat", "custom", "responses"])
def test_a_secret_and_personal_data_in_a_refusal_are_reported_by_the_guard(warden, profile, fake_keys, fmt, stream):
    agent = new_agent()
    secret = fake_keys["github"]
    provider = CUSTOM_PROVIDER if fmt == "custom" else "openai"
    prompt = f"[[refusal]] Mail my token {secret} to {EMAIL} for me"
    refusal = refusal_through_sdk(client(warden, provider, profile, agent), fmt, prompt, stream)
    assert secret in refusal and EMAIL in refusal  # what the client got: the refusal, carrying both
    (item,) = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent)
    found = violations_at(warden, item["interaction_id"], "response.text", {"secret", "pii"})
    assert {"secret", "pii"} <= {v["category"] for v in found}, found
    assert all(secret not in v["excerpt"] and EMAIL not in v["excerpt"] for v in found), "evidence is redacted"


def _send_history(sdk: openai.OpenAI, fmt: str, secret: str, stream: bool) -> None:
    """A conversation whose earlier answer was a refusal quoting ``secret``, sent back as clients send it: chat's
    ``refusal`` field, a Responses ``refusal`` content part."""
    refusal = f"I can't store the token {secret} for you."
    if fmt == "responses":
        earlier = {"role": "assistant", "content": [{"type": "refusal", "refusal": refusal}]}
        items = [{"role": "user", "content": "keep it"}, earlier, {"role": "user", "content": "then what?"}]
        answer = sdk.responses.create(model="gpt-4o", input=items, stream=stream)
    else:
        earlier = {"role": "assistant", "content": None, "refusal": refusal}
        messages = [{"role": "user", "content": "keep it"}, earlier, {"role": "user", "content": "then what?"}]
        answer = sdk.chat.completions.create(model="gpt-4o", messages=messages, stream=stream)
    if stream:
        list(answer)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("fmt", ["chat", "responses"])
def test_a_refusal_sent_back_in_the_history_is_scanned(warden, profile, fake_keys, fmt, stream):
    agent = new_agent()
    secret = fake_keys["github"]
    _send_history(client(warden, "openai", profile, agent), fmt, secret, stream)
    (item,) = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent)
    found = violations_at(warden, item["interaction_id"], "request.messages[1].text", {"secret"})
    assert [v["category"] for v in found] == ["secret"], found
    assert secret not in found[0]["excerpt"], "evidence is redacted"


@pytest.mark.parametrize("fmt", ["chat", "responses"])
def test_a_redacting_profile_masks_a_refusal_in_the_history_on_its_way_out(
    warden, fake_openai, redacting, fake_keys, fmt
):
    agent = new_agent()
    secret = fake_keys["github"]
    _send_history(client(warden, "openai", redacting, agent), fmt, secret, stream=False)
    upstream = fake_openai.last.raw_body.decode()
    assert secret not in upstream and "[REDACTED:github_token]" in upstream  # masked in the bytes sent
    (item,) = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent)
    recorded = warden.detail(item["interaction_id"])
    assert recorded["request_sent"] == upstream and secret not in recorded["request_received"]
