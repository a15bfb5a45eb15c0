"""The fake upstream speaks each provider's wire format well enough for the official SDKs, and its scripted
behaviours arrive as the SDKs' own results and exceptions."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import time
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from tests.fakes import FakeUpstream, Turn, plan
from tests.fakes.script import DirectiveError, ToolSpec, split_evenly

READ_FILE = '[[tool:read_file {"path": "/etc/passwd"}]]'
ANTHROPIC_MODEL = "claude-sonnet-4-6"
READ_FILE_TOOL_OPENAI = {
    "type": "function",
    "function": {
        "name": "read_file",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    },
}


def openai_client(fake: FakeUpstream, **options: object) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0, **options)  # type: ignore[arg-type]


def anthropic_client(fake: FakeUpstream) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="ak-test", base_url=fake.base_url, max_retries=0)


def gemini_client(fake: FakeUpstream, api_version: str | None = None) -> genai.Client:
    options: dict[str, object] = {"base_url": fake.url}
    if api_version:
        options["api_version"] = api_version
    return genai.Client(api_key="gk-test", http_options=options)  # type: ignore[arg-type]


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# -- the script, without any server ---------------------------------------------------------------------------------


def test_plan_echoes_the_prompt_and_counts_words() -> None:
    answer = plan(Turn(model="m", prompt="hello  big\nworld", input_texts=("be brief", "hello big world")))
    assert answer.text == "echo: hello big world"
    assert answer.tool_calls == ()
    assert (answer.input_tokens, answer.output_tokens) == (5, 4)
    assert answer.text_deltas() == ["echo:", " hello", " big", " world"]


def test_plan_reads_every_directive() -> None:
    prompt = f"look {READ_FILE} [[tool:ls]] [[error:429]] [[slow:0.5]] [[stream_fail]] [[chunks:3:0.01]]"
    answer = plan(Turn(model="m", prompt=prompt))
    assert answer.text == "echo: look"
    assert [(call.name, call.arguments) for call in answer.tool_calls] == [
        ("read_file", {"path": "/etc/passwd"}),
        ("ls", {}),
    ]
    assert answer.tool_calls[0].arguments_json == '{"path":"/etc/passwd"}'
    assert (answer.error_status, answer.slow, answer.stream_fail) == (429, 0.5, True)
    assert (answer.chunks, answer.chunk_delay) == (3, 0.01)
    assert "".join(answer.text_deltas()) == answer.text
    assert len(answer.text_deltas()) == 3


def test_plan_pads_short_text_to_the_asked_number_of_chunks() -> None:
    answer = plan(Turn(model="m", prompt="[[chunks:12]]"))
    assert len(answer.text_deltas()) == 12
    assert all(answer.text_deltas())
    assert split_evenly("abcdefg", 3) == ["abc", "de", "fg"]


@pytest.mark.parametrize("prompt", ["[[tool:x {not json}]]", "[[error:200]]", "[[slow:soon]]", "[[chunks:0]]"])
def test_plan_rejects_malformed_directives(prompt: str) -> None:
    with pytest.raises(DirectiveError):
        plan(Turn(model="m", prompt=prompt))


def test_tool_model_calls_the_first_declared_tool_until_a_tool_result_comes_back() -> None:
    tool = ToolSpec("search", {"type": "object", "properties": {"q": {"type": "string"}, "n": {"type": "integer"}}})
    first = plan(Turn(model="gpt-4o-tool-call", prompt="cats", tools=(tool,)))
    assert [(call.name, call.arguments) for call in first.tool_calls] == [("search", {"q": "cats"})]
    after = plan(Turn(model="gpt-4o-tool-call", prompt="3 cats found", prompt_is_tool_result=True, tools=(tool,)))
    assert after.tool_calls == ()
    assert after.text == "echo: 3 cats found"


# -- OpenAI ---------------------------------------------------------------------------------------------------------


def test_openai_chat_create_answers_and_records_the_request(fake_openai: FakeUpstream) -> None:
    raw = openai_client(fake_openai).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "system", "content": "be brief"}, *user("hello world")]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hello world"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "gpt-4o"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (4, 3)
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.headers["x-ratelimit-remaining-requests"] == "9999"

    received = fake_openai.last
    assert (received.method, received.path) == ("POST", "/v1/chat/completions")
    assert received.header("Authorization") == "Bearer sk-test"
    assert received.body["messages"][-1]["content"] == "hello world"


def test_openai_chat_stream_with_usage(fake_openai: FakeUpstream) -> None:
    stream = openai_client(fake_openai).chat.completions.create(
        model="gpt-4o", messages=user("one two three"), stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == "echo: one two three"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices][-1] == "stop"
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 3 + 4
    assert all(chunk.obfuscation for chunk in chunks)


def test_openai_chat_stream_ends_with_done_and_omits_usage_unless_asked(fake_openai: FakeUpstream) -> None:
    with httpx.stream(
        "POST",
        f"{fake_openai.base_url}/chat/completions",
        headers={"Authorization": "Bearer sk-test"},
        json={"model": "gpt-4o", "messages": user("hi"), "stream": True},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert all(chunk["object"] == "chat.completion.chunk" and "usage" not in chunk for chunk in chunks)


def test_openai_chat_tool_calls_stream_in_pieces_after_text(fake_openai: FakeUpstream) -> None:
    prompt = f'checking {READ_FILE} [[tool:list_dir {{"path": "/home", "depth": 2}}]]'
    client = openai_client(fake_openai)
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=user(prompt), stream=True))
    argument_chunks = [call for chunk in chunks for call in chunk.choices[0].delta.tool_calls or [] if call.id is None]
    assert len([call for call in argument_chunks if call.index == 0]) > 1  # arguments arrive in several pieces

    with client.chat.completions.stream(model="gpt-4o", messages=user(prompt)) as stream:
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert message.content == "echo: checking"
    assert final.choices[0].finish_reason == "tool_calls"
    calls = [(call.function.name, json.loads(call.function.arguments)) for call in message.tool_calls or []]
    assert calls == [("read_file", {"path": "/etc/passwd"}), ("list_dir", {"path": "/home", "depth": 2})]


def test_openai_tool_call_model_round_trip(fake_openai: FakeUpstream) -> None:
    client = openai_client(fake_openai)
    first = client.chat.completions.create(
        model="gpt-4o-tool-call", messages=user("/tmp/notes"), tools=[READ_FILE_TOOL_OPENAI]
    )
    call = (first.choices[0].message.tool_calls or [])[0]
    assert (call.function.name, json.loads(call.function.arguments)) == ("read_file", {"path": "/tmp/notes"})
    second = client.chat.completions.create(
        model="gpt-4o-tool-call",
        messages=[
            *user("/tmp/notes"),
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "shopping list"},
        ],
        tools=[READ_FILE_TOOL_OPENAI],
    )
    assert second.choices[0].message.content == "echo: shopping list"
    assert second.choices[0].message.tool_calls is None


async def test_openai_async_chat_create_and_stream(fake_openai: FakeUpstream) -> None:
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=fake_openai.base_url, max_retries=0)
    completion = await client.chat.completions.create(model="gpt-4o", messages=user("async hello"))
    assert completion.choices[0].message.content == "echo: async hello"
    pieces = [
        chunk.choices[0].delta.content or ""
        async for chunk in await client.chat.completions.create(model="gpt-4o", messages=user("x y"), stream=True)
        if chunk.choices
    ]
    assert "".join(pieces) == "echo: x y"
    await client.close()


def test_openai_responses_create(fake_openai: FakeUpstream) -> None:
    response = openai_client(fake_openai).responses.create(
        model="gpt-4.1", instructions="be brief", input=f"read it {READ_FILE}"
    )
    assert response.status == "completed"
    assert response.output_text == "echo: read it"
    calls = [item for item in response.output if item.type == "function_call"]
    assert [(call.name, json.loads(call.arguments)) for call in calls] == [("read_file", {"path": "/etc/passwd"})]
    assert response.usage is not None and response.usage.input_tokens == 2 + 5
    assert fake_openai.last.path == "/v1/responses"


def test_openai_responses_stream_event_sequence(fake_openai: FakeUpstream) -> None:
    with openai_client(fake_openai).responses.stream(model="gpt-4.1", input=f"go {READ_FILE}") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [event.type for event in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-1] == "response.completed"
    assert kinds.count("response.function_call_arguments.delta") > 1
    assert "response.function_call_arguments.done" in kinds
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert final.output_text == "echo: go"
    assert final.output[1].type == "function_call"


async def test_openai_async_responses_raw_stream(fake_openai: FakeUpstream) -> None:
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=fake_openai.base_url, max_retries=0)
    deltas = [
        event.delta
        async for event in await client.responses.create(model="gpt-4.1", input="a b c", stream=True)
        if event.type == "response.output_text.delta"
    ]
    assert "".join(deltas) == "echo: a b c"
    await client.close()


def test_openai_embeddings_base64_and_float(fake_openai: FakeUpstream) -> None:
    client = openai_client(fake_openai)
    default = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])  # SDK asks base64
    assert fake_openai.last.body["encoding_format"] == "base64"
    floats = client.embeddings.create(model="text-embedding-3-small", input=["alpha"], encoding_format="float")
    assert len(default.data) == 2
    assert len(default.data[0].embedding) == 1536
    assert math.isclose(sum(value * value for value in default.data[0].embedding), 1.0, rel_tol=1e-4)
    assert default.data[0].embedding == pytest.approx(floats.data[0].embedding, rel=1e-5)
    assert default.data[0].embedding != default.data[1].embedding
    small = client.embeddings.create(model="text-embedding-3-small", input="alpha", dimensions=8)
    assert len(small.data[0].embedding) == 8
    assert default.usage.prompt_tokens == 2


def test_openai_models_list(fake_openai: FakeUpstream) -> None:
    models = openai_client(fake_openai).models.list()
    assert "gpt-4o" in [model.id for model in models]
    assert fake_openai.last.method == "GET"


@pytest.mark.parametrize(
    ("status", "exception", "kind"),
    [
        (429, openai.RateLimitError, "requests"),
        (500, openai.InternalServerError, "server_error"),
        (400, openai.BadRequestError, "invalid_request_error"),
    ],
)
def test_openai_scripted_errors(
    fake_openai: FakeUpstream, status: int, exception: type[openai.APIStatusError], kind: str
) -> None:
    with pytest.raises(exception) as caught:
        openai_client(fake_openai).chat.completions.create(model="gpt-4o", messages=user(f"[[error:{status}]]"))
    assert caught.value.status_code == status
    assert isinstance(caught.value.body, dict) and caught.value.body["type"] == kind
    assert caught.value.response.headers["x-request-id"].startswith("req_")


def test_openai_error_before_a_stream_is_a_plain_error(fake_openai: FakeUpstream) -> None:
    with pytest.raises(openai.RateLimitError):
        openai_client(fake_openai).chat.completions.create(model="gpt-4o", messages=user("[[error:429]]"), stream=True)


def test_openai_missing_and_wrong_credentials() -> None:
    with FakeUpstream("openai", accepted_keys={"sk-right"}) as fake:
        response = httpx.post(f"{fake.base_url}/chat/completions", json={"model": "m", "messages": user("hi")})
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "invalid_request_error"
        with pytest.raises(openai.AuthenticationError) as caught:
            openai_client(fake).chat.completions.create(model="gpt-4o", messages=user("hi"))
        assert caught.value.body["code"] == "invalid_api_key"  # type: ignore[index]
        ok = openai.OpenAI(api_key="sk-right", base_url=fake.base_url, max_retries=0)
        assert ok.chat.completions.create(model="gpt-4o", messages=user("hi")).choices[0].message.content


def test_openai_stream_fail_drops_the_connection_mid_stream(fake_openai: FakeUpstream) -> None:
    received: list[str] = []
    stream = openai_client(fake_openai).chat.completions.create(
        model="gpt-4o", messages=user("a b c d e f [[stream_fail]]"), stream=True
    )
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "echo: a"  # two deltas arrived, the rest never did

    with pytest.raises(openai.APIConnectionError):
        openai_client(fake_openai).chat.completions.create(model="gpt-4o", messages=user("[[stream_fail]]"))


def test_openai_stream_error_event(fake_openai: FakeUpstream) -> None:
    stream = openai_client(fake_openai).chat.completions.create(
        model="gpt-4o", messages=user("a b c [[stream_error:503]]"), stream=True
    )
    with pytest.raises(openai.APIError, match="overloaded"):
        list(stream)


def test_openai_slow_answer_outlasts_a_short_client_timeout(fake_openai: FakeUpstream) -> None:
    client = openai_client(fake_openai, timeout=0.1)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="gpt-4o", messages=user("[[slow:3]]"))


def test_openai_chunks_directive_sets_the_number_of_deltas(fake_openai: FakeUpstream) -> None:
    stream = openai_client(fake_openai).chat.completions.create(
        model="gpt-4o", messages=user("hi [[chunks:7:0.001]]"), stream=True
    )
    contents = [chunk.choices[0].delta.content for chunk in stream if chunk.choices and chunk.choices[0].delta.content]
    assert len(contents) == 7
    assert "".join(contents).startswith("echo: hi")


def test_openai_bad_directive_and_unknown_route(fake_openai: FakeUpstream) -> None:
    client = openai_client(fake_openai)
    with pytest.raises(openai.BadRequestError, match="fake upstream"):
        client.chat.completions.create(model="gpt-4o", messages=user("[[slow:later]]"))
    response = httpx.post(f"{fake_openai.base_url}/nowhere", headers={"Authorization": "Bearer k"}, json={})
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Invalid URL (POST /v1/nowhere)"


def test_answers_are_deterministic_after_reset(fake_openai: FakeUpstream) -> None:
    def call() -> bytes:
        return httpx.post(
            f"{fake_openai.base_url}/chat/completions",
            headers={"Authorization": "Bearer k"},
            json={"model": "gpt-4o", "messages": user(f"same {READ_FILE}"), "stream": True},
        ).content

    first = call()
    fake_openai.reset()
    assert fake_openai.received == []
    assert call() == first


# -- Anthropic ------------------------------------------------------------------------------------------------------

ANTHROPIC_TOOLS = [
    {
        "name": "read_file",
        "description": "Read a file",
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    }
]


def test_anthropic_create_and_headers(fake_anthropic: FakeUpstream) -> None:
    raw = anthropic_client(fake_anthropic).messages.with_raw_response.create(
        model=ANTHROPIC_MODEL, max_tokens=64, system="be brief", messages=user("hello world")
    )
    message = raw.parse()
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "echo: hello world"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (4, 3)
    assert raw.headers["request-id"].startswith("req_")
    assert raw.headers["anthropic-ratelimit-requests-remaining"] == "3999"
    received = fake_anthropic.last
    assert received.path == "/v1/messages"
    # Older SDK releases send the key as x-api-key, this one as a bearer token; the API takes both.
    assert received.header("x-api-key") == "ak-test" or received.header("authorization") == "Bearer ak-test"
    assert received.header("anthropic-version")


def test_anthropic_stream_text(fake_anthropic: FakeUpstream) -> None:
    with anthropic_client(fake_anthropic).messages.stream(
        model=ANTHROPIC_MODEL, max_tokens=64, messages=user("one two three")
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) == 4
    assert "".join(pieces) == "echo: one two three"
    assert final.usage.output_tokens == 4


def test_anthropic_stream_tool_use_with_input_json_deltas(fake_anthropic: FakeUpstream) -> None:
    client = anthropic_client(fake_anthropic)
    prompt = f'let me look {READ_FILE} [[tool:read_file {{"path": "/etc/hosts"}}]]'
    events = list(client.messages.create(model=ANTHROPIC_MODEL, max_tokens=64, messages=user(prompt), stream=True))
    kinds = [event.type for event in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    json_parts = [
        event.delta.partial_json
        for event in events
        if event.type == "content_block_delta" and event.delta.type == "input_json_delta" and event.index == 1
    ]
    assert len(json_parts) > 2 and json_parts[0] == ""
    assert json.loads("".join(json_parts)) == {"path": "/etc/passwd"}

    with client.messages.stream(
        model=ANTHROPIC_MODEL, max_tokens=64, messages=user(prompt), tools=ANTHROPIC_TOOLS
    ) as s:
        final = s.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].type == "text"
    tool_uses = [(block.name, block.input) for block in final.content if block.type == "tool_use"]
    assert tool_uses == [("read_file", {"path": "/etc/passwd"}), ("read_file", {"path": "/etc/hosts"})]


def test_anthropic_stream_carries_ping_events(fake_anthropic: FakeUpstream) -> None:
    with httpx.stream(
        "POST",
        f"{fake_anthropic.url}/v1/messages",
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
        json={"model": ANTHROPIC_MODEL, "max_tokens": 8, "messages": user("hi"), "stream": True},
    ) as response:
        body = response.read().decode()
    assert 'event: ping\ndata: {"type": "ping"}\n\n' in body
    assert body.startswith("event: message_start\n")


def test_anthropic_tool_result_turn_gets_text(fake_anthropic: FakeUpstream) -> None:
    message = anthropic_client(fake_anthropic).messages.create(
        model="claude-tool-call",
        max_tokens=64,
        tools=ANTHROPIC_TOOLS,
        messages=[
            *user("/tmp/x"),
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "read_file", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "file body"}]},
        ],
    )
    assert message.stop_reason == "end_turn"
    assert message.content[0].text == "echo: file body"  # type: ignore[union-attr]


async def test_anthropic_async_stream(fake_anthropic: FakeUpstream) -> None:
    client = anthropic.AsyncAnthropic(api_key="ak-test", base_url=fake_anthropic.base_url, max_retries=0)
    async with client.messages.stream(model=ANTHROPIC_MODEL, max_tokens=64, messages=user("async hi")) as stream:
        text = "".join([piece async for piece in stream.text_stream])
    assert text == "echo: async hi"
    await client.close()


def test_anthropic_models_and_count_tokens(fake_anthropic: FakeUpstream) -> None:
    client = anthropic_client(fake_anthropic)
    assert ANTHROPIC_MODEL in [model.id for model in client.models.list()]
    count = client.messages.count_tokens(model=ANTHROPIC_MODEL, messages=user("three little words"))
    assert count.input_tokens == 3


@pytest.mark.parametrize(
    ("status", "exception", "kind"),
    [
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
def test_anthropic_scripted_errors(
    fake_anthropic: FakeUpstream, status: int, exception: type[anthropic.APIStatusError], kind: str
) -> None:
    with pytest.raises(exception) as caught:
        anthropic_client(fake_anthropic).messages.create(
            model=ANTHROPIC_MODEL, max_tokens=8, messages=user(f"[[error:{status}]]")
        )
    assert caught.value.status_code == status
    body = caught.value.body
    assert isinstance(body, dict) and body["type"] == "error" and body["error"]["type"] == kind
    assert caught.value.request_id == body["request_id"]


def test_anthropic_credentials_and_version_header(fake_anthropic: FakeUpstream) -> None:
    url = f"{fake_anthropic.url}/v1/messages"
    body = {"model": ANTHROPIC_MODEL, "max_tokens": 8, "messages": user("hi")}
    no_key = httpx.post(url, headers={"anthropic-version": "2023-06-01"}, json=body)
    assert no_key.status_code == 401
    assert no_key.json()["error"] == {"type": "authentication_error", "message": "x-api-key header is required"}
    no_version = httpx.post(url, headers={"x-api-key": "k"}, json=body)
    assert no_version.status_code == 400
    bearer = httpx.post(url, headers={"Authorization": "Bearer tok", "anthropic-version": "2023-06-01"}, json=body)
    assert bearer.status_code == 200


def test_anthropic_stream_error_and_stream_fail(fake_anthropic: FakeUpstream) -> None:
    client = anthropic_client(fake_anthropic)
    pieces: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError, match="overloaded_error"),
        client.messages.stream(model=ANTHROPIC_MODEL, max_tokens=8, messages=user("a b c [[stream_error]]")) as s,
    ):
        pieces.extend(s.text_stream)
    assert pieces == ["echo:", " a"]
    # The SDK lets its HTTP client's own error through: the body ended in the middle of the chunked stream.
    with (
        pytest.raises(Exception, match="incomplete chunked read"),
        client.messages.stream(model=ANTHROPIC_MODEL, max_tokens=8, messages=user("a b c [[stream_fail]]")) as s,
    ):
        list(s.text_stream)


# -- Gemini ---------------------------------------------------------------------------------------------------------


def test_gemini_generate_content_default_api_version(fake_gemini: FakeUpstream) -> None:
    client = gemini_client(fake_gemini)  # kept referenced: a collected genai.Client closes its connection pool
    response = client.models.generate_content(model="gemini-2.0-flash", contents="hello world")
    assert response.text == "echo: hello world"
    assert response.candidates is not None and response.candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert response.usage_metadata is not None
    assert (response.usage_metadata.prompt_token_count, response.usage_metadata.candidates_token_count) == (2, 3)
    received = fake_gemini.last
    # This google-genai release talks to the v1 surface unless told otherwise.
    assert received.path == "/v1/models/gemini-2.0-flash:generateContent"
    assert received.header("x-goog-api-key") == "gk-test"


def test_gemini_stream_over_sse_with_chosen_api_version(fake_gemini: FakeUpstream) -> None:
    client = gemini_client(fake_gemini, api_version="v1beta")
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="one two three"))
    assert "".join(chunk.text or "" for chunk in chunks) == "echo: one two three"
    assert len(chunks) == 4
    last = chunks[-1]
    assert last.usage_metadata is not None and last.usage_metadata.total_token_count == 3 + 4
    assert (fake_gemini.last.path, fake_gemini.last.query) == (
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        {"alt": "sse"},
    )


def test_gemini_function_calls(fake_gemini: FakeUpstream) -> None:
    tool = genai_types.Tool(
        function_declarations=[
            genai_types.FunctionDeclaration(
                name="get_weather",
                parameters=genai_types.Schema(
                    type=genai_types.Type.OBJECT,
                    properties={"city": genai_types.Schema(type=genai_types.Type.STRING)},
                    required=["city"],
                ),
            )
        ]
    )
    config = genai_types.GenerateContentConfig(tools=[tool])
    client = gemini_client(fake_gemini)
    response = client.models.generate_content(model="gemini-2.0-flash-tool-call", contents="Paris", config=config)
    assert [(call.name, call.args) for call in response.function_calls or []] == [("get_weather", {"city": "Paris"})]
    assert fake_gemini.last.body["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"

    prompt = f'weather? [[tool:get_weather {{"city": "Oslo"}}]] {READ_FILE}'
    chunks = list(client.models.generate_content_stream(model="gemini-2.0-flash", contents=prompt, config=config))
    calls = [(call.name, call.args) for chunk in chunks for call in chunk.function_calls or []]
    assert calls == [("get_weather", {"city": "Oslo"}), ("read_file", {"path": "/etc/passwd"})]
    assert "".join(chunk.text or "" for chunk in chunks if not chunk.function_calls) == "echo: weather?"


def test_gemini_function_response_turn_gets_text(fake_gemini: FakeUpstream) -> None:
    contents = [
        genai_types.Content(role="user", parts=[genai_types.Part(text="Paris")]),
        genai_types.Content(
            role="model", parts=[genai_types.Part.from_function_call(name="get_weather", args={"city": "Paris"})]
        ),
        genai_types.Content(
            role="user",
            parts=[genai_types.Part.from_function_response(name="get_weather", response={"result": "sunny"})],
        ),
    ]
    client = gemini_client(fake_gemini)
    response = client.models.generate_content(model="gemini-2.0-flash-tool-call", contents=contents)
    assert response.text == "echo: sunny"


async def test_gemini_async_stream(fake_gemini: FakeUpstream) -> None:
    client = gemini_client(fake_gemini)
    chunks = [chunk async for chunk in await client.aio.models.generate_content_stream(model="g", contents="x y")]
    assert "".join(chunk.text or "" for chunk in chunks) == "echo: x y"


def test_gemini_stream_without_sse_is_a_json_array(fake_gemini: FakeUpstream) -> None:
    response = httpx.post(
        f"{fake_gemini.url}/v1beta/models/gemini-2.0-flash:streamGenerateContent",
        params={"key": "gk-test"},
        json={"contents": [{"role": "user", "parts": [{"text": "hi there"}]}]},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.text.startswith("[{") and "\n,\r\n" in response.text and response.text.endswith("]")
    elements = response.json()
    assert [element["candidates"][0]["content"]["parts"][0]["text"] for element in elements] == [
        "echo:",
        " hi",
        " there",
    ]
    assert elements[-1]["candidates"][0]["finishReason"] == "STOP"
    assert fake_gemini.last.query == {"key": "gk-test"}


def test_gemini_scripted_errors_and_missing_key(fake_gemini: FakeUpstream) -> None:
    client = gemini_client(fake_gemini)
    with pytest.raises(genai_errors.ClientError) as client_error:
        client.models.generate_content(model="g", contents="[[error:429]]")
    assert (client_error.value.code, client_error.value.status) == (429, "RESOURCE_EXHAUSTED")
    with pytest.raises(genai_errors.ServerError) as server_error:
        client.models.generate_content(model="g", contents="[[error:503]]")
    assert (server_error.value.code, server_error.value.status) == (503, "UNAVAILABLE")
    no_key = httpx.post(
        f"{fake_gemini.url}/v1beta/models/g:generateContent", json={"contents": [{"parts": [{"text": "hi"}]}]}
    )
    assert no_key.status_code == 403
    assert no_key.json()["error"]["status"] == "PERMISSION_DENIED"


def test_gemini_stream_error_and_stream_fail(fake_gemini: FakeUpstream) -> None:
    client = gemini_client(fake_gemini)
    with pytest.raises(genai_errors.ServerError):
        list(client.models.generate_content_stream(model="g", contents="a b c [[stream_error]]"))
    texts: list[str] = []
    with pytest.raises(Exception, match="incomplete chunked read"):
        for chunk in client.models.generate_content_stream(model="g", contents="a b c [[stream_fail]]"):
            texts.append(chunk.text or "")
    assert texts == ["echo:", " a"]


def test_gemini_models_list(fake_gemini: FakeUpstream) -> None:
    client = gemini_client(fake_gemini)
    names = [model.name for model in client.models.list()]
    assert "models/gemini-2.0-flash" in names


# -- standalone mode ------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_standalone_server_answers_until_terminated() -> None:
    port = _free_port()
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.upstream", "--provider", "anthropic", "--port", str(port)],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert process.stdout is not None
        assert b"fake anthropic upstream" in process.stdout.readline()
        client = anthropic.Anthropic(api_key="k", base_url=f"http://127.0.0.1:{port}", max_retries=3)
        deadline = time.monotonic() + 20
        while True:
            try:
                message = client.messages.create(model=ANTHROPIC_MODEL, max_tokens=8, messages=user("standalone"))
                break
            except anthropic.APIConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert message.content[0].text == "echo: standalone"  # type: ignore[union-attr]
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_compressed_bodies_when_asked() -> None:
    with FakeUpstream("openai", compress=True) as fake:
        raw = openai_client(fake).chat.completions.with_raw_response.create(model="gpt-4o", messages=user("zip it"))
        assert raw.headers["content-encoding"] in ("gzip", "deflate", "br", "zstd")
        assert raw.parse().choices[0].message.content == "echo: zip it"
        plain = httpx.post(
            f"{fake.base_url}/chat/completions",
            headers={"Authorization": "Bearer k", "Accept-Encoding": "identity"},
            json={"model": "gpt-4o", "messages": user("no zip")},
        )
        assert "content-encoding" not in plain.headers
