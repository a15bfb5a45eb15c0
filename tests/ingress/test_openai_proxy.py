"""The official openai SDK, pointed at Warden, against the fake OpenAI upstream: answers, records, metrics."""

from __future__ import annotations

import json

import openai
import pytest

from tests.conftest import API_KEY
from tests.support.agents import attribution, new_agent


def client(warden, agent: str, user: str | None = None, profile: str = "") -> openai.OpenAI:
    base = f"{warden.url}/v1/openai" + (f"/{profile}" if profile else "")
    return openai.OpenAI(base_url=base, api_key=API_KEY, default_headers=attribution(agent, user), max_retries=0)


def async_client(warden, agent: str, user: str | None = None) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{warden.url}/v1/openai", api_key=API_KEY, default_headers=attribution(agent, user), max_retries=0
    )


MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hello to Warden"}]


def assert_no_secret(record: dict) -> None:
    assert API_KEY not in json.dumps(record)


def test_sync_chat_completion_is_answered_by_the_upstream_and_recorded(warden, fake_openai):
    agent, user = new_agent(), new_agent("user")
    answer = client(warden, agent, user).chat.completions.create(model="gpt-4o", messages=MESSAGES)

    direct = openai.OpenAI(base_url=fake_openai.url + "/v1", api_key=API_KEY, max_retries=0)
    expected = direct.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert answer.choices[0].message.content == expected.choices[0].message.content
    assert answer.usage.prompt_tokens == expected.usage.prompt_tokens

    (item,) = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent)
    assert item["user_id"] == user
    assert item["provider"] == "openai" and item["model"] == "gpt-4o" and item["stream"] is False
    assert item["usage"]["input_tokens"] == answer.usage.prompt_tokens
    assert item["usage"]["output_tokens"] == answer.usage.completion_tokens
    assert item["latency_ms"] > 0

    by_user = warden.interactions(user_id=user)["items"]
    assert [i["interaction_id"] for i in by_user] == [item["interaction_id"]]

    detail = warden.detail(item["interaction_id"])
    assert json.loads(detail["request_received"])["messages"] == MESSAGES
    assert json.loads(detail["response_body"])["choices"][0]["message"]["content"] == answer.choices[0].message.content
    assert_no_secret(detail)


def test_the_api_key_reaches_the_upstream_but_no_record(warden, fake_openai):
    agent = new_agent()
    client(warden, agent).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    forwarded = [r for r in fake_openai.received if r.headers.get("authorization") == f"Bearer {API_KEY}"]
    assert forwarded, "the client's credentials were not forwarded"
    assert not any(k.lower().startswith("x-archestra-") for r in forwarded for k in r.headers)
    (item,) = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent)
    assert_no_secret(warden.detail(item["interaction_id"]))


def test_streamed_chat_completion_arrives_whole_and_is_recorded_with_usage(warden):
    agent = new_agent()
    stream = client(warden, agent).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    text, usage = "", None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        usage = chunk.usage or usage
    assert text and usage is not None

    (item,) = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent)
    assert item["stream"] is True and item["model"] == "gpt-4o-mini"
    assert item["usage"]["output_tokens"] == usage.completion_tokens
    assert item["ttft_ms"] is not None and item["ttft_ms"] <= item["latency_ms"]
    detail = warden.detail(item["interaction_id"])
    assert "data: [DONE]" in detail["response_body"]
    assert detail["finish_reason"] == "stop"


async def test_async_client_streaming_and_not(warden):
    agent = new_agent()
    async with async_client(warden, agent) as aclient:
        answer = await aclient.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert answer.choices[0].message.content
        stream = await aclient.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        parts = [c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content]
        assert "".join(parts) == answer.choices[0].message.content
    items = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent)
    while len(items) < 2:
        items = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent)
    assert sorted(i["stream"] for i in items) == [False, True]


def test_every_response_carries_the_interaction_id(warden):
    agent = new_agent()
    raw = client(warden, agent).chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    interaction_id = raw.headers["x-warden-interaction-id"]
    assert raw.headers["x-request-id"].startswith("req_"), "the upstream's request id must reach the client"
    assert "x-ratelimit-remaining-requests" in raw.headers
    (item,) = warden.wait_for(lambda i: True, agent_id=agent)
    assert item["interaction_id"] == interaction_id


def test_the_default_profile_segment_and_other_paths(warden):
    agent = new_agent()
    answer = client(warden, agent, profile="default").chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert answer.choices[0].message.content
    models = client(warden, agent).models.list()
    assert any(m.id == "gpt-4o" for m in models.data)


def test_an_unknown_profile_is_a_404_in_openai_shape(warden):
    with pytest.raises(openai.NotFoundError) as caught:
        client(warden, new_agent(), profile="0d5b5a7e-8a41-4e55-9d7e-5b0d8a6c1f00").chat.completions.create(
            model="gpt-4o", messages=MESSAGES
        )
    assert "unknown profile" in caught.value.message


def test_upstream_errors_pass_through_unchanged(warden):
    agent = new_agent()
    with pytest.raises(openai.RateLimitError) as caught:
        client(warden, agent).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "[[error:429]] hi"}]
        )
    assert caught.value.response.headers.get("x-request-id")
    assert caught.value.body["code"] == "rate_limit_exceeded"
    (item,) = warden.wait_for(lambda i: i["status"] == 429, agent_id=agent)
    assert item["interaction_id"] == caught.value.response.headers["x-warden-interaction-id"]


def test_an_unreachable_upstream_is_a_502_in_openai_shape(warden):
    deadend = openai.OpenAI(base_url=f"{warden.url}/v1/deadend", api_key=API_KEY, max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        deadend.chat.completions.create(model="m", messages=MESSAGES)
    assert caught.value.status_code == 502
    assert caught.value.body["type"] == "upstream_error"
