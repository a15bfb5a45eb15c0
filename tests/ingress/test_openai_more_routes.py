"""The official openai SDK through Warden on the routes beside chat completions: the Responses API (streamed and
not, with function calls), embeddings and the models list."""

from __future__ import annotations

import json

import httpx2
import openai
import pytest

from tests.conftest import API_KEY, malformed_json_client
from tests.support.agents import attribution, new_agent

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TOOL_PROMPT = 'Weather in Paris? [[tool:get_weather {"city": "Paris"}]]'


def client(warden, agent: str, **options) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{warden.url}/v1/openai",
        api_key=API_KEY,
        default_headers=attribution(agent),
        max_retries=0,
        **options,
    )


def only(warden, agent: str, predicate=lambda i: i["status"] == 200) -> dict:
    (item,) = warden.wait_for(predicate, agent_id=agent)
    assert API_KEY not in json.dumps(warden.detail(item["interaction_id"]))
    return item


def test_a_response_is_answered_by_the_upstream_and_recorded(warden, fake_openai):
    agent = new_agent()
    answer = client(warden, agent).responses.create(model="gpt-4.1", instructions="Be terse.", input="Say hello")
    direct = openai.OpenAI(base_url=fake_openai.base_url, api_key=API_KEY, max_retries=0)
    assert answer.output_text == direct.responses.create(model="gpt-4.1", input="Say hello").output_text

    item = only(warden, agent)
    assert (item["provider"], item["model"], item["route"]) == ("openai", "gpt-4.1", "/responses")
    assert item["stream"] is False
    assert item["usage"]["input_tokens"] == answer.usage.input_tokens
    assert item["usage"]["output_tokens"] == answer.usage.output_tokens
    assert item["usage"]["cached_tokens"] == answer.usage.input_tokens_details.cached_tokens
    assert item["finish_reason"] == "completed"
    assert json.loads(warden.detail(item["interaction_id"])["response_body"])["id"] == answer.id


def test_a_response_with_a_function_call_and_its_output(warden):
    agent = new_agent()
    api = client(warden, agent)
    first = api.responses.create(model="gpt-4.1", input=TOOL_PROMPT, tools=[WEATHER_TOOL])
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    second = api.responses.create(
        model="gpt-4.1",
        tools=[WEATHER_TOOL],
        input=[
            {"role": "user", "content": TOOL_PROMPT},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
    )
    assert second.output_text == "echo: sunny"
    items = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent)
    while len(items) < 2:
        items = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent)
    calls = [warden.detail(i["interaction_id"])["tool_calls"] for i in items]
    assert sorted(calls, key=len) == [[], [{"id": call.call_id, "name": "get_weather", "arguments": {"city": "Paris"}}]]


def test_a_streamed_response_arrives_whole_and_is_recorded(warden):
    agent = new_agent()
    with client(warden, agent).responses.stream(model="gpt-4o-mini", input="one two three") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "echo: one two three"

    item = only(warden, agent)
    assert item["stream"] is True and item["route"] == "/responses" and item["model"] == "gpt-4o-mini"
    assert item["usage"]["input_tokens"] == final.usage.input_tokens
    assert item["usage"]["output_tokens"] == final.usage.output_tokens
    assert item["ttft_ms"] is not None and item["ttft_ms"] <= item["latency_ms"]
    assert "event: response.completed" in warden.detail(item["interaction_id"])["response_body"]


def test_a_streamed_function_call_is_recorded(warden):
    agent = new_agent()
    stream = client(warden, agent).responses.create(
        model="gpt-4.1", input=TOOL_PROMPT, tools=[WEATHER_TOOL], stream=True
    )
    done = [event.item for event in stream if event.type == "response.output_item.done"]
    assert [item.name for item in done if item.type == "function_call"] == ["get_weather"]
    item = only(warden, agent)
    (recorded,) = warden.detail(item["interaction_id"])["tool_calls"]
    assert (recorded["name"], recorded["arguments"]) == ("get_weather", {"city": "Paris"})


def test_a_response_stream_that_breaks_ends_with_the_responses_error_event(warden):
    agent = new_agent()
    events = list(client(warden, agent).responses.create(model="gpt-4.1", input="[[stream_fail]] a b c", stream=True))
    assert events[0].type == "response.created"
    assert events[-1].type == "error" and "broke off" in events[-1].message
    item = only(warden, agent, lambda i: i["error"] is not None)
    assert item["status"] == 502 and item["stream"] is True
    assert warden.detail(item["interaction_id"])["response_body"].rstrip().splitlines()[-2] == "event: error"


def test_embeddings_are_answered_by_the_upstream_and_recorded(warden, fake_openai):
    agent = new_agent()
    texts = ["the quick brown fox", "jumps"]
    answer = client(warden, agent).embeddings.create(model="text-embedding-3-small", input=texts)
    direct = openai.OpenAI(base_url=fake_openai.base_url, api_key=API_KEY, max_retries=0)
    expected = direct.embeddings.create(model="text-embedding-3-small", input=texts)
    assert [d.embedding for d in answer.data] == [d.embedding for d in expected.data]
    assert len(answer.data[0].embedding) == 1536

    item = only(warden, agent)
    assert (item["route"], item["model"], item["stream"]) == ("/embeddings", "text-embedding-3-small", False)
    assert item["usage"]["input_tokens"] == answer.usage.prompt_tokens
    assert item["usage"]["output_tokens"] == 0
    assert json.loads(warden.detail(item["interaction_id"])["request_received"])["input"] == texts


def test_the_models_list_and_one_model(warden):
    agent = new_agent()
    api = client(warden, agent)
    assert "gpt-4.1" in [model.id for model in api.models.list()]
    assert api.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"
    routes = {i["route"] for i in warden.wait_for(lambda i: i["status"] == 200, agent_id=agent)}
    while len(routes) < 2:
        routes = {i["route"] for i in warden.wait_for(lambda i: i["status"] == 200, agent_id=agent)}
    assert routes == {"/models", "/models/gpt-4o-mini"}


@pytest.mark.parametrize("call", ["responses", "embeddings"])
def test_malformed_json_is_openais_bad_request(warden, call):
    agent = new_agent()
    api = client(warden, agent, http_client=malformed_json_client(httpx2))
    with pytest.raises(openai.BadRequestError) as caught:
        if call == "responses":
            api.responses.create(model="gpt-4.1", input="hi")
        else:
            api.embeddings.create(model="text-embedding-3-small", input="hi")
    assert "not valid JSON" in caught.value.message
    assert caught.value.body["type"] == "invalid_request_error"
