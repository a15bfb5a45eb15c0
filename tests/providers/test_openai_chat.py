"""The OpenAI adapter on chat completions payloads as the API sends them."""

from __future__ import annotations

import orjson

from providers.openai import OpenAIAdapter

ADAPTER = OpenAIAdapter()
ROUTE = "/chat/completions"

REQUEST = {
    "model": "gpt-4o",
    "stream": True,
    "stream_options": {"include_usage": True},
    "messages": [
        {"role": "developer", "content": "You are a travel agent."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather in Paris?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/p.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_abc",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {"id": "call_def", "type": "function", "function": {"name": "now", "arguments": ""}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_abc", "content": "15 C"},
        {"role": "tool", "tool_call_id": "call_def", "content": [{"type": "text", "text": "09:00"}]},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        },
    ],
}

COMPLETION = {
    "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
    "object": "chat.completion",
    "created": 1741570283,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_X",
                        "type": "function",
                        "function": {"name": "book", "arguments": '{"city":"Rome","nights":2}'},
                    }
                ],
                "refusal": None,
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 1117,
        "completion_tokens": 46,
        "total_tokens": 1163,
        "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    },
}


def chunks(*deltas: dict, usage: dict | None = None) -> bytes:
    out = b""
    for delta in deltas:
        finish = delta.pop("finish_reason", None)
        payload = {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            "usage": None,
        }
        out += b"data: " + orjson.dumps(payload) + b"\n\n"
    if usage:
        out += b"data: " + orjson.dumps({"id": "chatcmpl-1", "choices": [], "usage": usage}) + b"\n\n"
    return out + b"data: [DONE]\n\n"


def test_request_view_names_tool_results_from_the_calls_in_the_history():
    view = ADAPTER.request_view(ROUTE, REQUEST)
    assert (view.provider, view.model, view.stream) == ("openai", "gpt-4o", True)
    system, user, assistant, weather, clock = view.messages
    assert (system.role, system.text, system.index) == ("system", "You are a travel agent.", 0)
    assert (user.role, user.text) == ("user", "Weather in Paris?")
    assert [(c.id, c.name, c.arguments) for c in assistant.tool_calls] == [
        ("call_abc", "get_weather", {"city": "Paris"}),
        ("call_def", "now", {}),
    ]
    assert weather.tool_result.model_dump() == {
        "tool_call_id": "call_abc",
        "name": "get_weather",
        "content": "15 C",
        "is_error": False,
    }
    assert (clock.tool_result.name, clock.tool_result.content, clock.index) == ("now", "09:00", 4)
    assert view.tools[0].name == "get_weather" and view.tools[0].parameters["type"] == "object"


def test_completion_view_with_tool_calls_and_cached_tokens():
    view = ADAPTER.completion_view(ROUTE, COMPLETION)
    assert view.text == ""
    assert [(c.id, c.name, c.arguments) for c in view.tool_calls] == [("call_X", "book", {"city": "Rome", "nights": 2})]
    assert view.usage.model_dump() == {
        "input_tokens": 1117,
        "output_tokens": 46,
        "cached_tokens": 1024,
        "cache_write_tokens": None,
        "reasoning_tokens": 0,
        "estimated": False,
    }
    assert view.finish_reason == "tool_calls"


def test_stream_view_joins_text_and_argument_pieces():
    stream = chunks(
        {"role": "assistant", "content": ""},
        {"content": "Booking "},
        {"content": "now."},
        {
            "tool_calls": [
                {"index": 0, "id": "call_X", "type": "function", "function": {"name": "book", "arguments": ""}}
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '"Rome"}'}}]},
        {"finish_reason": "tool_calls"},
        usage=COMPLETION["usage"],
    )
    view = ADAPTER.stream_view(ROUTE, stream)
    assert view.text == "Booking now."
    assert [(c.id, c.name, c.arguments) for c in view.tool_calls] == [("call_X", "book", {"city": "Rome"})]
    assert view.usage.cached_tokens == 1024 and view.usage.output_tokens == 46
    assert view.finish_reason == "tool_calls"


def test_a_stream_cut_by_an_error_event():
    stream = chunks({"content": "Hel"}).removesuffix(b"data: [DONE]\n\n")
    view = ADAPTER.stream_view(ROUTE, stream + ADAPTER.stream_error_event("broke off", route=ROUTE))
    assert (view.text, view.finish_reason) == ("Hel", "error")


def test_error_envelope_and_stream_error():
    assert orjson.loads(ADAPTER.error_body(400, "bad", "invalid_request_error")) == {
        "error": {"message": "bad", "type": "invalid_request_error", "param": None, "code": "invalid_request_error"}
    }
    event = ADAPTER.stream_error_event("broke off", route=ROUTE)
    assert event.startswith(b"data: ") and orjson.loads(event[6:])["error"]["message"] == "broke off"


REFUSAL = "I can't share the key sk-live-example."


def test_a_refusal_is_the_answers_text_for_the_detectors_whole_and_streamed():
    message = {"role": "assistant", "content": None, "refusal": REFUSAL}
    whole = {**COMPLETION, "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
    view = ADAPTER.completion_view(ROUTE, whole)
    assert view.text == REFUSAL and [(p.kind, p.text) for p in view.parts] == [("refusal", REFUSAL)]
    stream = chunks(
        {"role": "assistant", "content": None, "refusal": ""},
        {"refusal": REFUSAL[:10]},
        {"refusal": REFUSAL[10:]},
        {"finish_reason": "stop"},
    )
    assert ADAPTER.stream_view(ROUTE, stream).text == REFUSAL


def test_text_and_a_refusal_are_both_read():
    message = {"role": "assistant", "content": "Partly:", "refusal": REFUSAL}
    whole = {**COMPLETION, "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
    assert ADAPTER.completion_view(ROUTE, whole).text == f"Partly:\n{REFUSAL}"


def test_a_refusal_sent_back_in_the_history_is_read_as_text():
    history = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "refusal": REFUSAL},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": REFUSAL}]},
    ]
    view = ADAPTER.request_view(ROUTE, {"model": "gpt-4o", "messages": history})
    assert [m.text for m in view.messages] == ["hi", REFUSAL, REFUSAL]
    assert [p.kind for p in view.messages[1].parts] == ["refusal"]
