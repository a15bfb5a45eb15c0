"""The Anthropic adapter on Messages API payloads as the API sends them."""

from __future__ import annotations

import orjson

from providers.anthropic import AnthropicAdapter
from providers.sse import iter_events

ADAPTER = AnthropicAdapter()
ROUTE = "/v1/messages"

REQUEST = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 1024,
    "stream": True,
    "system": [
        {"type": "text", "text": "You are a travel agent."},
        {"type": "text", "text": "Long cached context", "cache_control": {"type": "ephemeral"}},
    ],
    "tools": [
        {
            "name": "get_weather",
            "description": "Get the current weather in a given location",
            "input_schema": {
                "type": "object",
                "properties": {"location": {"type": "string"}},
                "required": ["location"],
            },
        },
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
    ],
    "messages": [
        {"role": "user", "content": "What is the weather in Paris and in Rome?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Two cities, two calls.", "signature": "EqQBCgIYAhIM"},
                {"type": "text", "text": "Let me check both."},
                {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"location": "Paris"}},
                {"type": "tool_use", "id": "toolu_01B", "name": "get_weather", "input": {"location": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "15 C, cloudy"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01B",
                    "content": [{"type": "text", "text": "24 C"}, {"type": "text", "text": "sunny"}],
                    "is_error": False,
                },
                {"type": "text", "text": "Which is warmer?"},
            ],
        },
    ],
}

MESSAGE = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-6",
    "content": [
        {"type": "text", "text": "I'll look that up."},
        {"type": "tool_use", "id": "toolu_01T1x", "name": "get_weather", "input": {"location": "San Francisco, CA"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 42,
        "cache_creation_input_tokens": 100,
        "cache_read_input_tokens": 2000,
        "output_tokens": 57,
        "service_tier": "standard",
    },
}


def sse(*events: tuple[str, dict]) -> bytes:
    return b"".join(b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n" for name, data in events)


STREAM = sse(
    (
        "message_start",
        {
            "type": "message_start",
            "message": {
                **MESSAGE,
                "content": [],
                "stop_reason": None,
                "usage": {**MESSAGE["usage"], "output_tokens": 1},
            },
        },
    ),
    (
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "The user wants weather."},
        },
    ),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "EqQBCgIY"}},
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
    ("ping", {"type": "ping"}),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "I'll "}},
    ),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "look that up."}},
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    (
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {"type": "tool_use", "id": "toolu_01T1x", "name": "get_weather", "input": {}},
        },
    ),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": ""}},
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": '{"location": "San Fra'},
        },
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": 'ncisco, CA"}'},
        },
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 2}),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 89},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
)


def test_request_meta_reads_model_and_stream_from_the_body():
    meta = ADAPTER.request_meta(ROUTE, REQUEST, "")
    assert (meta.model, meta.stream) == ("claude-sonnet-4-6", True)
    assert ADAPTER.request_meta(ROUTE, ["not", "an", "object"], "").model == ""


def test_request_view_has_system_calls_results_and_tools():
    view = ADAPTER.request_view(ROUTE, REQUEST)
    assert view.provider == "anthropic" and view.model == "claude-sonnet-4-6" and view.stream is True
    system, question, assistant, paris, rome, follow_up = view.messages
    assert (system.role, system.index) == ("system", -1)
    assert system.text == "You are a travel agent.\nLong cached context"
    assert (question.role, question.text, question.index) == ("user", "What is the weather in Paris and in Rome?", 0)
    assert assistant.role == "assistant" and assistant.text == "Let me check both."  # thinking is not the answer
    assert [(c.id, c.name, c.arguments) for c in assistant.tool_calls] == [
        ("toolu_01A", "get_weather", {"location": "Paris"}),
        ("toolu_01B", "get_weather", {"location": "Rome"}),
    ]
    assert paris.role == "tool" and paris.index == 2
    assert paris.tool_result.model_dump() == {
        "tool_call_id": "toolu_01A",
        "name": "get_weather",
        "content": "15 C, cloudy",
        "is_error": False,
    }
    assert rome.tool_result.content == "24 C\nsunny" and rome.tool_result.name == "get_weather"
    assert (follow_up.role, follow_up.text, follow_up.index) == ("user", "Which is warmer?", 2)
    weather, search = view.tools
    assert weather.name == "get_weather" and weather.parameters["required"] == ["location"]
    assert weather.description.startswith("Get the current weather")
    assert (search.name, search.parameters) == ("web_search", None)


def test_completion_view_counts_cache_reads_and_writes_as_input():
    view = ADAPTER.completion_view(ROUTE, MESSAGE)
    assert view.text == "I'll look that up."
    assert [(c.id, c.name, c.arguments) for c in view.tool_calls] == [
        ("toolu_01T1x", "get_weather", {"location": "San Francisco, CA"})
    ]
    assert view.usage.model_dump() == {
        "input_tokens": 2142,
        "output_tokens": 57,
        "cached_tokens": 2000,
        "cache_write_tokens": 100,
        "reasoning_tokens": None,
        "estimated": False,
    }
    assert view.finish_reason == "tool_use"


def test_completion_view_ignores_what_is_not_a_message():
    assert ADAPTER.completion_view("/v1/messages/count_tokens", {"input_tokens": 12}).usage.input_tokens is None
    models = {"data": [{"type": "model", "id": "claude-sonnet-4-6"}], "has_more": False}
    assert ADAPTER.completion_view("/v1/models", models).text == ""


def test_stream_view_assembles_text_tool_input_and_final_usage():
    view = ADAPTER.stream_view(ROUTE, STREAM)
    assert view.text == "I'll look that up."
    assert [(c.id, c.name, c.arguments) for c in view.tool_calls] == [
        ("toolu_01T1x", "get_weather", {"location": "San Francisco, CA"})
    ]
    # message_delta's output tokens replace message_start's placeholder; its input counts stay.
    assert view.usage.model_dump() == {
        "input_tokens": 2142,
        "output_tokens": 89,
        "cached_tokens": 2000,
        "cache_write_tokens": 100,
        "reasoning_tokens": None,
        "estimated": False,
    }
    assert view.finish_reason == "tool_use"


def test_stream_view_of_a_stream_that_errored():
    stream = STREAM.split(b"event: content_block_stop")[0] + ADAPTER.stream_error_event("upstream broke off")
    view = ADAPTER.stream_view(ROUTE, stream)
    assert view.finish_reason == "error"
    assert view.usage.input_tokens == 2142


def test_a_tool_use_without_argument_deltas_keeps_its_start_input():
    stream = sse(
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "tool_use", "id": "toolu_1", "name": "now", "input": {}},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    )
    assert ADAPTER.stream_view(ROUTE, stream).tool_calls[0].arguments == {}


def test_error_envelopes():
    body = orjson.loads(ADAPTER.error_body(404, "unknown profile x", "not_found_error"))
    assert body == {"type": "error", "error": {"type": "not_found_error", "message": "unknown profile x"}}
    assert orjson.loads(ADAPTER.error_body(502, "down", "upstream_error"))["error"]["type"] == "api_error"
    assert orjson.loads(ADAPTER.error_body(504, "slow", "upstream_timeout"))["error"]["type"] == "timeout_error"
    ((event, data),) = list(iter_events(ADAPTER.stream_error_event("it broke")))
    assert event == "error"
    assert orjson.loads(data) == {"type": "error", "error": {"type": "api_error", "message": "it broke"}}
