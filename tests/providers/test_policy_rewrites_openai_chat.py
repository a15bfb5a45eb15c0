"""Inline policy rewrites on chat completions, for OpenAI and the OpenAI-compatible custom providers: held streams,
refusals and replaced tool results, judged by the openai SDK's own parsers on streams the fake upstream really sent."""

from __future__ import annotations

import openai
import orjson
import pytest

from providers.base import ProviderAdapter
from providers.registry import builtin_adapters, openai_compatible
from providers.sse import iter_events
from tests.fakes.upstream import FakeUpstream
from tests.providers.rewrites import REFUSAL, SEEDS, SEND_EMAIL, Replay, fetch, run

ROUTE = "/v1/chat/completions"
ADAPTERS = {"openai": builtin_adapters()["openai"], "custom": openai_compatible("local-llm")}
PROMPTS = {"text then call": f"please mail {SEND_EMAIL}", "call only": SEND_EMAIL}
TEXT_BEFORE = {"text then call": "echo: please mail", "call only": ""}
"""What the fake says before its calls, for each prompt."""


def answer(fake: FakeUpstream, prompt: str, *, stream: bool) -> bytes:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}], "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    return fetch(f"{fake.base_url}/chat/completions", body, {"Authorization": "Bearer sk-test"})[0]


def chunks(stream: bytes) -> list[dict]:
    return [orjson.loads(data) for _, data in iter_events(stream) if data != "[DONE]"]


@pytest.fixture(scope="module")
def sdk(replay: Replay) -> openai.OpenAI:
    """One client for the module (building one costs far more than a request)."""
    return openai.OpenAI(api_key="sk-test", base_url=f"{replay.url}/v1", max_retries=0)


@pytest.fixture(scope="module")
def upstream(fake_openai: FakeUpstream) -> dict[str, bytes]:
    return {name: answer(fake_openai, prompt, stream=True) for name, prompt in PROMPTS.items()}


def test_every_adapter_offers_the_policy_operations() -> None:
    # Instantiating proves the abstract methods are implemented; each must hand out a fresh filter per stream.
    adapters: list[ProviderAdapter] = [*builtin_adapters().values(), openai_compatible("vllm")]
    for adapter in adapters:
        assert adapter.held_stream(ROUTE, "text/event-stream") is not adapter.held_stream(ROUTE, "text/event-stream")


@pytest.mark.parametrize("seed", SEEDS[:3])
@pytest.mark.parametrize("prompt", PROMPTS)
@pytest.mark.parametrize("provider", ADAPTERS)
def test_released_chunks_are_the_upstream_bytes(
    upstream: dict[str, bytes], provider: str, prompt: str, seed: int
) -> None:
    original = upstream[prompt]
    held = run(ADAPTERS[provider].held_stream(ROUTE, "text/event-stream"), original, seed)
    assert held.stream.holding
    assert b"send_email" not in held.passed
    assert original.startswith(held.passed)
    assert held.passed + held.stream.release() == original


@pytest.mark.parametrize("seed", SEEDS[:3])
@pytest.mark.parametrize("prompt", PROMPTS)
@pytest.mark.parametrize("provider", ADAPTERS)
def test_the_refusal_ends_the_stream_as_the_sdk_expects(
    upstream: dict[str, bytes], replay: Replay, sdk: openai.OpenAI, provider: str, prompt: str, seed: int
) -> None:
    original = upstream[prompt]
    held = run(ADAPTERS[provider].held_stream(ROUTE, "text/event-stream"), original, seed)
    refused = held.passed + held.stream.refuse(REFUSAL)

    replay.answer(refused, "text/event-stream")
    messages = [{"role": "user", "content": "hi"}]
    with sdk.chat.completions.stream(model="gpt-4o", messages=messages, stream_options={"include_usage": True}) as s:
        list(s)
        final = s.get_final_completion()

    choice = final.choices[0]
    assert not choice.message.tool_calls
    assert choice.message.content == TEXT_BEFORE[prompt] + REFUSAL
    assert choice.finish_reason == "stop"
    assert final.usage is not None
    assert final.usage.completion_tokens == chunks(original)[-1]["usage"]["completion_tokens"]


@pytest.mark.parametrize("provider", ADAPTERS)
def test_the_refused_body_parses_as_a_plain_answer(
    fake_openai: FakeUpstream, replay: Replay, sdk: openai.OpenAI, provider: str
) -> None:
    original = orjson.loads(answer(fake_openai, PROMPTS["text then call"], stream=False))
    assert original["choices"][0]["finish_reason"] == "tool_calls"

    replay.answer(ADAPTERS[provider].refusal_body(ROUTE, original, REFUSAL), "application/json")
    completion = sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])

    assert completion.id == original["id"]
    assert completion.choices[0].message.content == REFUSAL
    assert not completion.choices[0].message.tool_calls
    assert completion.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("provider", ADAPTERS)
def test_replacing_tool_results_changes_exactly_the_named_ones(provider: str) -> None:
    adapter = ADAPTERS[provider]
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "read", "arguments": "{}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "read", "arguments": "{}"}},
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "kept"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "evil"}]},
        ],
    }
    adapter.replace_tool_results(ROUTE, body, {"call_2": "[blocked]", "call_9": "x"})
    view = adapter.request_view(ROUTE, body)
    assert {m.tool_result.tool_call_id: m.tool_result.content for m in view.messages if m.tool_result} == {
        "call_1": "kept",
        "call_2": "[blocked]",
    }
    assert body["messages"][2] == {"role": "tool", "tool_call_id": "call_1", "content": "kept"}
