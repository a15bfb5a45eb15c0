"""The official google-genai SDK, pointed at Warden, against the fake Gemini upstream: the model from the path,
both stream shapes (SSE and the JSON array), function calling, the API key (header or ``?key=``) forwarded and
never stored, and Warden's own errors in Google's envelope."""

from __future__ import annotations

import json
import logging

import httpx
import orjson
import pytest
from google import genai
from google.genai import errors, types

from tests.conftest import API_KEY, malformed_json_client
from tests.support.agents import attribution, new_agent
from tests.support.published import assert_secret_nowhere, published_events

MODEL = "gemini-2.5-flash"
UNKNOWN_PROFILE = "0d5b5a7e-8a41-4e55-9d7e-5b0d8a6c1f00"
WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="Current weather in a city",
    parameters=types.Schema(
        type=types.Type.OBJECT, properties={"city": types.Schema(type=types.Type.STRING)}, required=["city"]
    ),
)


def client(warden, agent: str, profile: str = "", **http_options) -> genai.Client:
    base = f"{warden.url}/v1/gemini" + (f"/{profile}" if profile else "")
    options = {"base_url": base, "api_version": "v1beta", "headers": attribution(agent), **http_options}
    return genai.Client(api_key=API_KEY, http_options=options)


def route(method: str, model: str = MODEL) -> str:
    return f"/v1beta/models/{model}:{method}"


@pytest.fixture(scope="module")
def published(warden) -> list[str]:
    """Every event the ingress publishes from here on, as JSON text."""
    return published_events(warden, "key-audit")


def assert_key_nowhere(warden, item: dict, published: list[str], caplog: pytest.LogCaptureFixture) -> None:
    assert_secret_nowhere(warden, item, published, caplog, API_KEY)


def test_generate_content_is_answered_by_the_upstream_and_recorded(warden, fake_gemini, published, caplog):
    caplog.set_level(logging.DEBUG)
    agent = new_agent()
    config = types.GenerateContentConfig(system_instruction="Be terse.")
    api = client(warden, agent)  # held: a google-genai client closes its connections when collected
    answer = api.models.generate_content(model=MODEL, contents="Say hello to Warden", config=config)
    assert fake_gemini.last.header("x-goog-api-key") == API_KEY

    direct = genai.Client(api_key=API_KEY, http_options={"base_url": fake_gemini.base_url, "api_version": "v1beta"})
    expected = direct.models.generate_content(model=MODEL, contents="Say hello to Warden", config=config)
    assert answer.text == expected.text == "echo: Say hello to Warden"

    (item,) = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent)
    assert item["provider"] == "gemini" and item["model"] == MODEL and item["stream"] is False
    assert item["route"] == route("generateContent")
    assert item["usage"]["input_tokens"] == answer.usage_metadata.prompt_token_count
    assert item["usage"]["output_tokens"] == answer.usage_metadata.candidates_token_count
    assert item["finish_reason"] == "STOP"
    detail = warden.detail(item["interaction_id"])
    assert json.loads(detail["request_received"])["contents"][0]["parts"][0]["text"] == "Say hello to Warden"
    assert_key_nowhere(warden, item, published, caplog)


def test_generate_content_stream_arrives_whole_and_is_recorded(warden, fake_gemini):
    agent = new_agent()
    api = client(warden, agent)
    chunks = list(api.models.generate_content_stream(model=MODEL, contents="one two three four"))
    assert "".join(chunk.text for chunk in chunks) == "echo: one two three four"
    assert fake_gemini.last.query.get("alt") == "sse"

    (item,) = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent)
    assert item["stream"] is True and item["model"] == MODEL
    assert item["route"] == route("streamGenerateContent")
    assert item["usage"]["output_tokens"] == chunks[-1].usage_metadata.candidates_token_count
    assert item["usage"]["input_tokens"] == chunks[-1].usage_metadata.prompt_token_count
    assert item["ttft_ms"] is not None and item["ttft_ms"] <= item["latency_ms"]
    assert item["finish_reason"] == "STOP"


def test_function_calling_round_trip(warden):
    agent = new_agent()
    api = client(warden, agent)
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[WEATHER])])
    prompt = 'Weather in Paris? [[tool:get_weather {"city": "Paris"}]]'
    first = api.models.generate_content(model=MODEL, contents=prompt, config=config)
    (call,) = first.function_calls
    assert call.name == "get_weather" and call.args == {"city": "Paris"}

    history = [
        types.Content(role="user", parts=[types.Part(text=prompt)]),
        first.candidates[0].content,
        types.Content(
            role="user", parts=[types.Part.from_function_response(name="get_weather", response={"result": "sunny"})]
        ),
    ]
    second = api.models.generate_content(model=MODEL, contents=history, config=config)
    assert second.text == "echo: sunny"

    streamed = list(api.models.generate_content_stream(model=MODEL, contents=prompt, config=config))
    assert [c.name for chunk in streamed for c in chunk.function_calls or []] == ["get_weather"]

    items = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent)
    while len(items) < 3:
        items = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent)
    with_calls = [i for i in items if warden.detail(i["interaction_id"])["tool_calls"]]
    assert sorted(i["stream"] for i in with_calls) == [False, True]
    for item in with_calls:
        (recorded,) = warden.detail(item["interaction_id"])["tool_calls"]
        assert (recorded["name"], recorded["arguments"]) == ("get_weather", {"city": "Paris"})


@pytest.mark.parametrize("sse", [True, False], ids=["alt=sse", "json-array"])
def test_the_key_in_the_query_is_forwarded_and_never_stored(warden, fake_gemini, published, caplog, sse):
    caplog.set_level(logging.DEBUG)
    agent = new_agent()
    query = f"alt=sse&key={API_KEY}" if sse else f"key={API_KEY}"
    response = httpx.post(
        f"{warden.url}/v1/gemini/v1beta/models/{MODEL}:streamGenerateContent?{query}",
        json={"contents": [{"role": "user", "parts": [{"text": "one two three"}]}]},
        headers=attribution(agent),
        timeout=10,
    )
    assert response.status_code == 200
    assert fake_gemini.last.query["key"] == API_KEY
    if sse:
        assert response.text.startswith("data: ")
    else:
        texts = [element["candidates"][0]["content"]["parts"][0]["text"] for element in response.json()]
        assert "".join(texts) == "echo: one two three"

    (item,) = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent)
    assert item["route"] == route("streamGenerateContent")
    assert item["stream"] is True and item["usage"]["output_tokens"] == 4 and item["finish_reason"] == "STOP"
    assert_key_nowhere(warden, item, published, caplog)


def test_warden_errors_come_in_google_envelope(warden):
    elsewhere = client(warden, new_agent(), profile=UNKNOWN_PROFILE)
    with pytest.raises(errors.ClientError) as missing:
        elsewhere.models.generate_content(model=MODEL, contents="hi")
    assert (missing.value.code, missing.value.status) == (404, "NOT_FOUND")
    assert "unknown profile" in missing.value.message

    agent = new_agent()
    broken = client(warden, agent, httpx_client=malformed_json_client(httpx))
    with pytest.raises(errors.ClientError) as bad:
        broken.models.generate_content(model=MODEL, contents="hi")
    assert (bad.value.code, bad.value.status) == (400, "INVALID_ARGUMENT")
    assert "not valid JSON" in bad.value.message
    (item,) = warden.wait_for(lambda i: i["status"] == 400, agent_id=agent)
    assert item["provider"] == "gemini"


def test_upstream_errors_pass_through_unchanged(warden):
    agent = new_agent()
    api = client(warden, agent)
    with pytest.raises(errors.ClientError) as caught:
        api.models.generate_content(model=MODEL, contents="[[error:429]] hi")
    assert (caught.value.code, caught.value.status) == (429, "RESOURCE_EXHAUSTED")
    (item,) = warden.wait_for(lambda i: i["status"] == 429, agent_id=agent)
    assert item["model"] == MODEL


def test_a_broken_sse_stream_ends_with_an_error_the_sdk_raises(warden):
    agent = new_agent()
    received: list[str] = []
    api = client(warden, agent)
    with pytest.raises(errors.ServerError) as caught:
        for chunk in api.models.generate_content_stream(model=MODEL, contents="[[stream_fail]] a b c"):
            received.append(chunk.text)
    assert received, "the stream broke before any chunk reached the client"
    assert (caught.value.code, caught.value.status) == (502, "UNAVAILABLE")
    assert "broke off" in caught.value.message
    (item,) = warden.wait_for(lambda i: i["error"] is not None, agent_id=agent)
    assert item["status"] == 502 and item["stream"] is True


def test_a_broken_json_array_stream_still_parses_and_ends_with_an_error_element(warden):
    agent = new_agent()
    response = httpx.post(
        f"{warden.url}/v1/gemini/v1beta/models/{MODEL}:streamGenerateContent",
        json={"contents": [{"parts": [{"text": "[[stream_fail]] a b c"}]}]},
        headers={"x-goog-api-key": API_KEY, **attribution(agent)},
        timeout=10,
    )
    elements = orjson.loads(response.content)
    assert "candidates" in elements[0]
    assert elements[-1]["error"]["status"] == "UNAVAILABLE"
    (item,) = warden.wait_for(lambda i: i["error"] is not None, agent_id=agent)
    assert item["status"] == 502 and item["finish_reason"] is None
