"""The OpenAI adapter on Responses API payloads as the API sends them."""

from __future__ import annotations

import orjson

from providers.openai import OpenAIAdapter
from providers.sse import iter_events

ADAPTER = OpenAIAdapter()
ROUTE = "/responses"

REQUEST = {
    "model": "gpt-4.1",
    "instructions": "You are a travel agent.",
    "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
            "status": "completed",
        },
        {"type": "function_call_output", "call_id": "call_1", "output": '{"temperature": 15}'},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "It is 15 C."}]},
        {"role": "user", "content": "And tomorrow?"},
    ],
    "tools": [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Weather",
            "strict": True,
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
        {"type": "web_search_preview"},
    ],
    "stream": False,
}

RESPONSE = {
    "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
    "object": "response",
    "status": "completed",
    "incomplete_details": None,
    "model": "gpt-4.1-2025-04-14",
    "output": [
        {"type": "reasoning", "id": "rs_2", "summary": []},
        {
            "type": "message",
            "id": "msg_1",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Checking tomorrow.", "annotations": []}],
        },
        {
            "type": "function_call",
            "id": "fc_2",
            "call_id": "call_2",
            "name": "get_forecast",
            "arguments": '{"city":"Paris","day":1}',
            "status": "completed",
        },
    ],
    "usage": {
        "input_tokens": 328,
        "input_tokens_details": {"cached_tokens": 256},
        "output_tokens": 52,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 380,
    },
}


def sse(*events: dict) -> bytes:
    return b"".join(
        b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps({**e, "sequence_number": n}) + b"\n\n"
        for n, e in enumerate(events)
    )


IN_PROGRESS = {**RESPONSE, "status": "in_progress", "output": [], "usage": None}
MESSAGE, CALL = RESPONSE["output"][1], RESPONSE["output"][2]
EVENTS = [
    {"type": "response.created", "response": IN_PROGRESS},
    {"type": "response.output_item.added", "output_index": 0, "item": {**MESSAGE, "content": []}},
    {
        "type": "response.output_text.delta",
        "output_index": 0,
        "item_id": "msg_1",
        "content_index": 0,
        "delta": "Checking ",
    },
    {
        "type": "response.output_text.delta",
        "output_index": 0,
        "item_id": "msg_1",
        "content_index": 0,
        "delta": "tomorrow.",
    },
    {"type": "response.output_item.done", "output_index": 0, "item": MESSAGE},
    {"type": "response.output_item.added", "output_index": 1, "item": {**CALL, "arguments": ""}},
    {"type": "response.function_call_arguments.delta", "output_index": 1, "item_id": "fc_2", "delta": '{"city":'},
    {
        "type": "response.function_call_arguments.delta",
        "output_index": 1,
        "item_id": "fc_2",
        "delta": '"Paris","day":1}',
    },
    {"type": "response.output_item.done", "output_index": 1, "item": CALL},
    {"type": "response.completed", "response": {**RESPONSE, "output": [MESSAGE, CALL]}},
]


def test_request_view_reads_instructions_items_and_function_tools():
    view = ADAPTER.request_view(ROUTE, REQUEST)
    assert (view.provider, view.model, view.stream) == ("openai", "gpt-4.1", False)
    system, user, reasoning, call, output, assistant, again = view.messages
    # Reasoning (its summary, empty here) is there for readers of the record, and is not text to judge.
    assert (reasoning.role, reasoning.text, reasoning.index) == ("assistant", "", 1)
    assert [(p.kind, p.text) for p in reasoning.parts] == [("reasoning", "")]
    assert (system.role, system.text, system.index) == ("system", "You are a travel agent.", -1)
    assert (user.role, user.text, user.index) == ("user", "Weather in Paris?", 0)
    assert [(c.id, c.name, c.arguments) for c in call.tool_calls] == [("call_1", "get_weather", {"city": "Paris"})]
    assert call.index == 2
    assert output.tool_result.model_dump() == {
        "tool_call_id": "call_1",
        "name": "get_weather",
        "content": '{"temperature": 15}',
        "is_error": False,
    }
    assert (assistant.role, assistant.text) == ("assistant", "It is 15 C.")
    assert (again.role, again.text, again.index) == ("user", "And tomorrow?", 5)
    assert [t.name for t in view.tools] == ["get_weather"]


def test_a_string_input_is_one_user_message():
    view = ADAPTER.request_view(ROUTE, {"model": "gpt-4.1", "input": "hi", "stream": True})
    assert [(m.role, m.text, m.index) for m in view.messages] == [("user", "hi", 0)]
    assert view.stream is True


def test_completion_view_of_a_response():
    view = ADAPTER.completion_view(ROUTE, RESPONSE)
    assert view.text == "Checking tomorrow."
    assert [(c.id, c.name, c.arguments) for c in view.tool_calls] == [
        ("call_2", "get_forecast", {"city": "Paris", "day": 1})
    ]
    assert view.usage.model_dump() == {
        "input_tokens": 328,
        "output_tokens": 52,
        "cached_tokens": 256,
        "cache_write_tokens": None,
        "reasoning_tokens": 0,
        "estimated": False,
    }
    assert view.finish_reason == "completed"


def test_an_incomplete_response_gives_its_reason():
    incomplete = {**RESPONSE, "status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}}
    assert ADAPTER.completion_view(ROUTE, incomplete).finish_reason == "max_output_tokens"


def test_stream_view_takes_the_completed_response():
    view = ADAPTER.stream_view(ROUTE, sse(*EVENTS))
    assert view == ADAPTER.completion_view(ROUTE, {**RESPONSE, "output": [MESSAGE, CALL]})


def test_a_stream_cut_before_completion_is_assembled_from_its_deltas():
    cut = sse(*EVENTS[:8]) + ADAPTER.stream_error_event("broke off", route=ROUTE)
    view = ADAPTER.stream_view(ROUTE, cut)
    assert view.text == "Checking tomorrow."
    assert [(c.name, c.arguments) for c in view.tool_calls] == [("get_forecast", {"city": "Paris", "day": 1})]
    assert view.usage.input_tokens is None
    assert view.finish_reason == "error"


def test_the_stream_error_is_the_responses_error_event():
    ((event, data),) = list(iter_events(ADAPTER.stream_error_event("broke off", route="/responses")))
    assert event == "error"
    assert orjson.loads(data) == {
        "type": "error",
        "code": "upstream_error",
        "message": "broke off",
        "param": None,
        "sequence_number": 0,
    }


REFUSAL = "I can't share the key sk-live-example."
REFUSING = {
    **RESPONSE,
    "output": [
        {
            "type": "message",
            "id": "msg_r",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "refusal", "refusal": REFUSAL}],
        }
    ],
}


def test_a_refusal_is_the_answers_text_for_the_detectors():
    view = ADAPTER.completion_view(ROUTE, REFUSING)
    assert view.text == REFUSAL
    assert [(p.kind, p.text) for p in view.parts] == [("refusal", REFUSAL)]


def test_a_refusal_streamed_and_cut_before_completion_is_assembled_from_its_deltas():
    located = {"output_index": 0, "item_id": "msg_r", "content_index": 0}
    events = [
        {"type": "response.created", "response": IN_PROGRESS},
        {"type": "response.output_item.added", "output_index": 0, "item": {**REFUSING["output"][0], "content": []}},
        {"type": "response.refusal.delta", **located, "delta": REFUSAL[:10]},
        {"type": "response.refusal.delta", **located, "delta": REFUSAL[10:]},
    ]
    view = ADAPTER.stream_view(ROUTE, sse(*events) + ADAPTER.stream_error_event("broke off", route=ROUTE))
    assert view.text == REFUSAL and view.finish_reason == "error"
    whole = sse(*events, {"type": "response.completed", "response": REFUSING})
    assert ADAPTER.stream_view(ROUTE, whole).text == REFUSAL


def test_a_refusal_sent_back_in_the_input_is_read_as_text():
    earlier = {"role": "assistant", "content": [{"type": "refusal", "refusal": REFUSAL}]}
    view = ADAPTER.request_view(ROUTE, {"model": "gpt-4.1", "input": [{"role": "user", "content": "hi"}, earlier]})
    assert [(m.role, m.text) for m in view.messages] == [("user", "hi"), ("assistant", REFUSAL)]
