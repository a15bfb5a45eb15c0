"""The official anthropic SDK, pointed at Warden, against the fake Anthropic upstream: answers, streams with every
event type, tool use, the models list, credentials and Warden's own errors in Anthropic's envelope."""

from __future__ import annotations

import json

import anthropic
import httpx
import httpx2
import pytest

from tests.conftest import API_KEY, malformed_json_client
from tests.support.agents import attribution, new_agent

MODEL = "claude-sonnet-4-6"
MESSAGES = [{"role": "user", "content": "Say hello to Warden"}]
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
UNKNOWN_PROFILE = "0d5b5a7e-8a41-4e55-9d7e-5b0d8a6c1f00"


def client(warden, agent: str, profile: str = "", **options) -> anthropic.Anthropic:
    base = f"{warden.url}/v1/anthropic" + (f"/{profile}" if profile else "")
    options.setdefault("api_key", API_KEY)
    return anthropic.Anthropic(base_url=base, default_headers=attribution(agent), max_retries=0, **options)


def assert_no_secret(warden, interaction_id: str) -> None:
    assert API_KEY not in json.dumps(warden.detail(interaction_id))


def test_a_message_is_answered_by_the_upstream_and_recorded(warden, fake_anthropic):
    agent = new_agent()
    answer = client(warden, agent).messages.create(model=MODEL, max_tokens=256, system="Be terse.", messages=MESSAGES)

    direct = anthropic.Anthropic(base_url=fake_anthropic.base_url, api_key=API_KEY, max_retries=0)
    expected = direct.messages.create(model=MODEL, max_tokens=256, system="Be terse.", messages=MESSAGES)
    assert answer.content[0].text == expected.content[0].text == "echo: Say hello to Warden"
    assert answer.usage.input_tokens == expected.usage.input_tokens

    (item,) = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent)
    assert item["provider"] == "anthropic" and item["model"] == MODEL and item["stream"] is False
    assert item["route"] == "/v1/messages"
    assert item["usage"]["input_tokens"] == answer.usage.input_tokens
    assert item["usage"]["output_tokens"] == answer.usage.output_tokens
    assert item["usage"]["cached_tokens"] == 0
    assert item["finish_reason"] == "end_turn"
    detail = warden.detail(item["interaction_id"])
    assert json.loads(detail["request_received"])["messages"] == MESSAGES
    assert json.loads(detail["response_body"])["content"][0]["text"] == answer.content[0].text
    assert_no_secret(warden, item["interaction_id"])


def test_credentials_and_anthropic_headers_reach_the_upstream_but_no_record(warden, fake_anthropic):
    agent = new_agent()
    beta = "prompt-caching-2024-07-31"
    client(warden, agent).messages.create(
        model=MODEL, max_tokens=64, messages=MESSAGES, extra_headers={"anthropic-beta": beta}
    )
    sent = next(r for r in reversed(fake_anthropic.received) if r.header("anthropic-beta") == beta)
    # The SDK sends its key as x-api-key or as a bearer token, depending on its version.
    assert API_KEY in (sent.header("x-api-key"), (sent.header("authorization") or "").removeprefix("Bearer "))
    assert sent.header("anthropic-version")
    assert not any(name.startswith("x-archestra-") for name in sent.headers)

    raw_agent = new_agent()
    response = httpx.post(
        f"{warden.url}/v1/anthropic/v1/messages",
        json={"model": MODEL, "max_tokens": 64, "messages": MESSAGES},
        headers={
            "x-api-key": API_KEY,
            "anthropic-version": "2023-06-01",
            "anthropic-beta": beta,
            **attribution(raw_agent),
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    sent = fake_anthropic.received[-1]
    assert sent.header("x-api-key") == API_KEY and sent.header("authorization") is None
    assert (sent.header("anthropic-version"), sent.header("anthropic-beta")) == ("2023-06-01", beta)
    for who in (agent, raw_agent):
        (item,) = warden.wait_for(lambda i: i["status"] == 200, agent_id=who)
        assert_no_secret(warden, item["interaction_id"])


def test_a_stream_arrives_whole_with_every_event_type_and_is_recorded(warden):
    agent = new_agent()
    with client(warden, agent).messages.stream(model=MODEL, max_tokens=256, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "echo: Say hello to Warden"

    (item,) = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent)
    assert item["stream"] is True and item["model"] == MODEL
    assert item["usage"]["input_tokens"] == final.usage.input_tokens
    assert item["usage"]["output_tokens"] == final.usage.output_tokens
    assert item["finish_reason"] == "end_turn"
    assert item["ttft_ms"] is not None and item["ttft_ms"] <= item["latency_ms"]
    body = warden.detail(item["interaction_id"])["response_body"]
    for event in (
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ):
        assert f"event: {event}" in body


def test_tool_use_round_trip_streamed_and_not(warden):
    agent = new_agent()
    api = client(warden, agent)
    prompt = 'What is the weather? [[tool:get_weather {"city": "Paris"}]]'
    first = api.messages.create(
        model=MODEL, max_tokens=256, tools=[WEATHER_TOOL], messages=[{"role": "user", "content": prompt}]
    )
    (call,) = [block for block in first.content if block.type == "tool_use"]
    assert call.name == "get_weather" and call.input == {"city": "Paris"}
    assert first.stop_reason == "tool_use"

    history = [
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": [block.model_dump() for block in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 21 C"}]},
    ]
    second = api.messages.create(model=MODEL, max_tokens=256, tools=[WEATHER_TOOL], messages=history)
    assert second.content[0].text == "echo: sunny, 21 C"

    with api.messages.stream(
        model=MODEL, max_tokens=256, tools=[WEATHER_TOOL], messages=[{"role": "user", "content": prompt}]
    ) as stream:
        streamed = stream.get_final_message()
    assert [b.input for b in streamed.content if b.type == "tool_use"] == [{"city": "Paris"}]

    items = warden.wait_for(lambda i: i["finish_reason"] == "tool_use", agent_id=agent)
    while len(items) < 2:
        items = warden.wait_for(lambda i: i["finish_reason"] == "tool_use", agent_id=agent)
    for item in items:
        calls = warden.detail(item["interaction_id"])["tool_calls"]
        assert [(c["name"], c["arguments"]) for c in calls] == [("get_weather", {"city": "Paris"})]
    assert sorted(i["stream"] for i in items) == [False, True]


def test_the_models_list_and_one_model(warden):
    agent = new_agent()
    api = client(warden, agent)
    assert "claude-sonnet-4-6" in [model.id for model in api.models.list()]
    assert api.models.retrieve("claude-haiku-4-5-20251001").display_name == "Claude Haiku 4.5"
    items = warden.wait_for(lambda i: i["route"] == "/v1/models", agent_id=agent)
    assert items[0]["provider"] == "anthropic" and items[0]["status"] == 200


def test_warden_errors_come_in_anthropic_envelope(warden):
    with pytest.raises(anthropic.NotFoundError) as missing:
        client(warden, new_agent(), profile=UNKNOWN_PROFILE).messages.create(
            model=MODEL, max_tokens=64, messages=MESSAGES
        )
    assert missing.value.body["type"] == "error"
    assert missing.value.body["error"]["type"] == "not_found_error"
    assert "unknown profile" in missing.value.body["error"]["message"]

    agent = new_agent()
    broken = client(warden, agent, http_client=malformed_json_client(httpx2))
    with pytest.raises(anthropic.BadRequestError) as bad:
        broken.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    assert bad.value.body["error"]["type"] == "invalid_request_error"
    assert "not valid JSON" in bad.value.body["error"]["message"]
    (item,) = warden.wait_for(lambda i: i["status"] == 400, agent_id=agent)
    assert item["provider"] == "anthropic"


def test_upstream_errors_pass_through_unchanged(warden):
    agent = new_agent()
    with pytest.raises(anthropic.RateLimitError) as caught:
        client(warden, agent).messages.create(
            model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "[[error:429]] hi"}]
        )
    assert caught.value.body["error"]["type"] == "rate_limit_error"
    assert caught.value.response.headers["request-id"].startswith("req_")
    (item,) = warden.wait_for(lambda i: i["status"] == 429, agent_id=agent)
    assert item["interaction_id"] == caught.value.response.headers["x-warden-interaction-id"]


def test_a_stream_that_breaks_upstream_ends_with_an_anthropic_error_event(warden):
    agent = new_agent()
    broken = [{"role": "user", "content": "[[stream_fail]] one two three"}]
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        client(warden, agent).messages.stream(model=MODEL, max_tokens=64, messages=broken) as stream,
    ):
        for _ in stream.text_stream:
            pass
    assert caught.value.body["type"] == "error" and "broke off" in caught.value.body["error"]["message"]
    (item,) = warden.wait_for(lambda i: i["error"] is not None, agent_id=agent)
    assert item["status"] == 502 and item["stream"] is True
    body = warden.detail(item["interaction_id"])["response_body"]
    assert body.rstrip().splitlines()[-2] == "event: error"
