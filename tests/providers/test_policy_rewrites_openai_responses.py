"""Inline policy rewrites on the Responses API: held streams, refusals and replaced tool results, judged by the openai
SDK's own parsers on streams the fake upstream really sent."""

from __future__ import annotations

import openai
import orjson
import pytest

from providers.openai import OpenAIAdapter
from providers.sse import iter_events
from tests.fakes.upstream import FakeUpstream
from tests.providers.rewrites import REFUSAL, SEEDS, SEND_EMAIL, Replay, fetch, run

ADAPTER = OpenAIAdapter()
ROUTE = "/v1/responses"
PROMPTS = {
    "text then call": f"please mail {SEND_EMAIL}",
    "call only": SEND_EMAIL,
    "two calls": f"mail and list {SEND_EMAIL} [[tool:ls]]",
}
TEXT_BEFORE = {"text then call": ["echo: please mail"], "call only": [], "two calls": ["echo: mail and list"]}
"""What the fake says before its calls, for each prompt."""


def answer(fake: FakeUpstream, prompt: str, *, stream: bool) -> bytes:
    body = {"model": "gpt-4.1", "input": prompt, "stream": stream}
    return fetch(f"{fake.base_url}/responses", body, {"Authorization": "Bearer sk-test"})[0]


def events(stream: bytes) -> list[dict]:
    return [orjson.loads(data) for _, data in iter_events(stream)]


@pytest.fixture(scope="module")
def sdk(replay: Replay) -> openai.OpenAI:
    """One client for the module (building one costs far more than a request)."""
    return openai.OpenAI(api_key="sk-test", base_url=f"{replay.url}/v1", max_retries=0)


@pytest.fixture(scope="module")
def upstream(fake_openai: FakeUpstream) -> dict[str, bytes]:
    return {name: answer(fake_openai, prompt, stream=True) for name, prompt in PROMPTS.items()}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("prompt", PROMPTS)
def test_released_events_are_the_upstream_bytes(upstream: dict[str, bytes], prompt: str, seed: int) -> None:
    original = upstream[prompt]
    held = run(ADAPTER.held_stream(ROUTE, "text/event-stream"), original, seed)
    assert held.stream.holding
    assert b"send_email" not in held.passed
    rest = original[len(held.passed) :]
    assert original.startswith(held.passed)
    first_held = events(rest)[0]
    assert (first_held["type"], first_held["item"]["type"]) == ("response.output_item.added", "function_call")
    assert held.passed + held.stream.release() == original


def test_a_stream_without_a_call_is_never_held(fake_openai: FakeUpstream) -> None:
    original = answer(fake_openai, "just talk", stream=True)
    held = run(ADAPTER.held_stream(ROUTE, "text/event-stream"), original, 0)
    assert not held.stream.holding
    assert held.passed == original
    assert held.stream.release() == b""


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("prompt", PROMPTS)
def test_the_refusal_ends_the_stream_as_the_sdk_expects(
    upstream: dict[str, bytes], replay: Replay, sdk: openai.OpenAI, prompt: str, seed: int
) -> None:
    original = upstream[prompt]
    held = run(ADAPTER.held_stream(ROUTE, "text/event-stream"), original, seed)
    refused = held.passed + held.stream.refuse(REFUSAL)

    replay.answer(refused, "text/event-stream")
    with sdk.responses.stream(model="gpt-4.1", input="hi") as stream:
        seen = list(stream)
        final = stream.get_final_response()

    assert [event.sequence_number for event in seen] == list(range(len(seen)))
    added = [event.output_index for event in seen if event.type == "response.output_item.added"]
    assert added == list(range(len(added)))
    assert final.status == "completed"
    assert [item.type for item in final.output if item.type != "message"] == []
    texts = [part.text for item in final.output for part in item.content]
    assert texts == [*TEXT_BEFORE[prompt], REFUSAL]
    upstream_usage = events(original)[-1]["response"]["usage"]
    assert final.usage is not None and final.usage.output_tokens == upstream_usage["output_tokens"]

    # What the recorder reads of the stream the client got.
    view = ADAPTER.stream_view(ROUTE, refused)
    assert (view.tool_calls, view.finish_reason) == ([], "completed")
    assert view.text.endswith(REFUSAL)


def test_the_refusal_message_id_differs_from_every_item_sent() -> None:
    sent = [
        {"type": "response.created", "sequence_number": 0, "response": {"id": "resp_1", "output": []}},
        {
            "type": "response.output_item.done",
            "sequence_number": 1,
            "output_index": 0,
            "item": {"id": "msg_refusal_1", "type": "message", "content": []},
        },
        {
            "type": "response.output_item.added",
            "sequence_number": 2,
            "output_index": 1,
            "item": {"id": "fc_1", "type": "function_call", "call_id": "c", "name": "x", "arguments": ""},
        },
    ]
    stream = ADAPTER.held_stream(ROUTE, "text/event-stream")
    passed = stream.feed(b"".join(b"data: " + orjson.dumps(event) + b"\n\n" for event in sent))
    assert len(events(passed)) == 2
    refusal = events(stream.refuse(REFUSAL))
    assert refusal[0]["output_index"] == 1
    assert refusal[0]["item"]["id"] not in ("msg_refusal_1", "fc_1")
    assert [event["sequence_number"] for event in refusal] == list(range(2, 2 + len(refusal)))


def test_the_refused_body_parses_as_a_plain_answer(
    fake_openai: FakeUpstream, replay: Replay, sdk: openai.OpenAI
) -> None:
    original = orjson.loads(answer(fake_openai, PROMPTS["text then call"], stream=False))
    assert any(item["type"] == "function_call" for item in original["output"])

    replay.answer(ADAPTER.refusal_body(ROUTE, original, REFUSAL), "application/json")
    response = sdk.responses.create(model="gpt-4.1", input="hi")

    assert (response.id, response.status) == (original["id"], "completed")
    assert [item.type for item in response.output] == ["message"]
    assert response.output_text == REFUSAL
    assert response.usage is not None and response.usage.output_tokens == original["usage"]["output_tokens"]


def test_replacing_tool_results_changes_exactly_the_named_ones() -> None:
    body = {
        "model": "gpt-4.1",
        "input": [
            {"role": "user", "content": "go"},
            {"type": "function_call", "call_id": "call_1", "name": "read", "arguments": "{}"},
            {"type": "function_call", "call_id": "call_2", "name": "read", "arguments": "{}"},
            {"type": "custom_tool_call", "call_id": "call_3", "name": "patch", "input": "x"},
            {"type": "function_call_output", "call_id": "call_1", "output": "kept"},
            {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "evil"}]},
            {"type": "custom_tool_call_output", "call_id": "call_3", "output": "also evil"},
        ],
    }
    ids = [m.tool_result.tool_call_id for m in ADAPTER.request_view(ROUTE, body).messages if m.tool_result]
    assert ids == ["call_1", "call_2", "call_3"]

    ADAPTER.replace_tool_results(ROUTE, body, {"call_2": "[blocked]", "call_3": "[blocked too]", "call_9": "x"})

    results = {
        m.tool_result.tool_call_id: m.tool_result.content
        for m in ADAPTER.request_view(ROUTE, body).messages
        if m.tool_result
    }
    assert results == {"call_1": "kept", "call_2": "[blocked]", "call_3": "[blocked too]"}
    assert body["input"][4] == {"type": "function_call_output", "call_id": "call_1", "output": "kept"}
    assert len(body["input"]) == 7
