"""The Gemini adapter on Generative Language API payloads as the API sends them (both field spellings, both stream
shapes)."""

from __future__ import annotations

import orjson
import pytest

from providers.gemini import GeminiAdapter, target

ADAPTER = GeminiAdapter()
GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"
STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"

REQUEST = {
    "systemInstruction": {"parts": [{"text": "You are a travel agent."}]},
    "contents": [
        {"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}]},
        {
            "role": "model",
            "parts": [
                {"text": "Checking.", "thought": True},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temperature": 15, "sky": "cloudy"}}},
                {"functionResponse": {"name": "get_weather", "response": {"result": "24 C"}}},
                {"text": "Which is warmer?"},
            ],
        },
    ],
    "tools": [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Current weather",
                    "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]},
                }
            ]
        },
        {"googleSearch": {}},
    ],
    "generationConfig": {"temperature": 0.2},
}

RESPONSE = {
    "candidates": [
        {
            "content": {
                "parts": [
                    {"text": "Let me think.", "thought": True},
                    {"text": "Paris is "},
                    {"text": "cooler."},
                    {"functionCall": {"id": "call-7", "name": "book_trip", "args": {"city": "Rome"}}},
                ],
                "role": "model",
            },
            "finishReason": "STOP",
            "index": 0,
        }
    ],
    "usageMetadata": {
        "promptTokenCount": 120,
        "candidatesTokenCount": 12,
        "cachedContentTokenCount": 100,
        "thoughtsTokenCount": 30,
        "totalTokenCount": 162,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 120}],
    },
    "modelVersion": "gemini-2.5-flash",
    "responseId": "mAitaJHQMtWm1dkP",
}


def chunk(parts: list[dict], usage: dict, finish: str | None = None) -> dict:
    candidate: dict = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "gemini-2.5-flash"}


CHUNKS = [
    chunk([{"text": "Paris is "}], {"promptTokenCount": 120, "totalTokenCount": 120}),
    chunk([{"text": "cooler."}], {"promptTokenCount": 120, "totalTokenCount": 120}),
    chunk(
        [{"functionCall": {"name": "book_trip", "args": {"city": "Rome"}}}],
        {"promptTokenCount": 120, "candidatesTokenCount": 14, "totalTokenCount": 134},
        "STOP",
    ),
]


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        (GENERATE, ("gemini-2.5-flash", "generateContent")),
        ("/v1/models/gemini-2.0-flash:streamGenerateContent", ("gemini-2.0-flash", "streamGenerateContent")),
        ("/v1beta/tunedModels/my-model-1:generateContent", ("tunedModels/my-model-1", "generateContent")),
        ("/v1beta/models/gemini-2.5-pro", ("gemini-2.5-pro", "")),
        ("/v1beta/models", ("", "")),
    ],
)
def test_the_model_and_method_come_from_the_path(route, expected):
    assert target(route) == expected


def test_request_meta_streams_only_for_stream_generate_content():
    assert ADAPTER.request_meta(STREAM, {"contents": []}, "alt=sse").stream is True
    assert ADAPTER.request_meta(STREAM, None, "").stream is True  # the body plays no part
    meta = ADAPTER.request_meta(GENERATE, {"contents": []}, "")
    assert (meta.model, meta.stream) == ("gemini-2.5-flash", False)


def test_request_view_pairs_function_responses_with_their_calls():
    view = ADAPTER.request_view(GENERATE, REQUEST)
    assert view.provider == "gemini" and view.model == "gemini-2.5-flash" and view.stream is False
    system, question, model_turn, paris, rome, follow_up = view.messages
    assert (system.role, system.text, system.index) == ("system", "You are a travel agent.", -1)
    assert (question.role, question.text, question.index) == ("user", "Weather in Paris and Rome?", 0)
    assert model_turn.role == "assistant" and model_turn.text == ""  # a thought is not the answer
    assert [(c.id, c.name, c.arguments) for c in model_turn.tool_calls] == [
        ("get_weather#0", "get_weather", {"city": "Paris"}),
        ("get_weather#1", "get_weather", {"city": "Rome"}),
    ]
    assert paris.tool_result.model_dump() == {
        "tool_call_id": "get_weather#0",
        "name": "get_weather",
        "content": '{"temperature":15,"sky":"cloudy"}',
        "is_error": False,
    }
    assert (rome.tool_result.tool_call_id, rome.tool_result.content) == ("get_weather#1", '{"result":"24 C"}')
    assert (paris.index, rome.index) == (2, 2)
    assert (follow_up.role, follow_up.text) == ("user", "Which is warmer?")
    (tool,) = view.tools
    assert (tool.name, tool.description, tool.parameters["required"]) == ("get_weather", "Current weather", ["city"])


def test_request_view_reads_snake_case_fields_and_ids():
    body = {
        "system_instruction": {"parts": [{"text": "terse"}]},
        "contents": [
            {"role": "model", "parts": [{"function_call": {"id": "c1", "name": "lookup", "args": {"q": "x"}}}]},
            {"role": "user", "parts": [{"function_response": {"id": "c1", "name": "lookup", "response": {"hits": 0}}}]},
        ],
        "tools": [{"function_declarations": [{"name": "lookup", "parameters_json_schema": {"type": "object"}}]}],
    }
    view = ADAPTER.request_view(GENERATE, body)
    assert view.messages[0].text == "terse"
    assert view.messages[1].tool_calls[0].id == "c1"
    assert view.messages[2].tool_result.tool_call_id == "c1"
    assert view.tools[0].parameters == {"type": "object"}


def test_completion_view_skips_thoughts_and_counts_them_as_output():
    view = ADAPTER.completion_view(GENERATE, RESPONSE)
    assert view.text == "Paris is cooler."
    assert [(c.id, c.name, c.arguments) for c in view.tool_calls] == [("call-7", "book_trip", {"city": "Rome"})]
    assert view.usage.model_dump() == {
        "input_tokens": 120,
        "output_tokens": 42,
        "cached_tokens": 100,
        "cache_write_tokens": None,
        "reasoning_tokens": 30,
        "estimated": False,
    }
    assert view.finish_reason == "STOP"


def test_a_blocked_prompt_has_its_block_reason_as_finish_reason():
    blocked = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 8}}
    view = ADAPTER.completion_view(GENERATE, blocked)
    assert (view.finish_reason, view.usage.input_tokens, view.text) == ("SAFETY", 8, "")


def sse_stream() -> bytes:
    return b"".join(b"data: " + orjson.dumps(c) + b"\r\n\r\n" for c in CHUNKS)


def array_stream() -> bytes:
    return b"[" + b"\n,\r\n".join(orjson.dumps(c, option=orjson.OPT_INDENT_2) for c in CHUNKS) + b"\n]"


@pytest.mark.parametrize("stream", [sse_stream(), array_stream()], ids=["sse", "json-array"])
def test_stream_view_of_both_stream_shapes(stream):
    view = ADAPTER.stream_view(STREAM, stream)
    assert view.text == "Paris is cooler."
    assert [(c.id, c.name, c.arguments) for c in view.tool_calls] == [("book_trip#0", "book_trip", {"city": "Rome"})]
    assert view.usage.model_dump() == {
        "input_tokens": 120,
        "output_tokens": 14,
        "cached_tokens": None,
        "cache_write_tokens": None,
        "reasoning_tokens": None,
        "estimated": False,
    }
    assert view.finish_reason == "STOP"


def test_a_json_array_cut_between_elements_is_closed_by_the_error_element():
    whole = array_stream()
    cut = whole[: whole.rindex(b"\n,\r\n")]  # the first two elements, the array still open
    tail = ADAPTER.stream_error_event("broke off", content_type="application/json", started=True)
    elements = orjson.loads(cut + tail)
    assert len(elements) == 3
    assert elements[-1] == {"error": {"code": 502, "message": "broke off", "status": "UNAVAILABLE"}}
    view = ADAPTER.stream_view(STREAM, cut + tail)
    assert (view.text, view.finish_reason) == ("Paris is cooler.", "error")


def test_a_json_array_cut_inside_an_element_keeps_the_elements_before_it():
    view = ADAPTER.stream_view(STREAM, array_stream()[:-40])
    assert view.text == "Paris is cooler." and view.tool_calls == []


def test_stream_error_event_for_sse_and_for_an_unopened_array():
    sse = ADAPTER.stream_error_event("broke off", content_type="text/event-stream")
    assert sse.startswith(b"data: ") and sse.endswith(b"\r\n\r\n")
    assert orjson.loads(sse[6:])["error"]["status"] == "UNAVAILABLE"
    unopened = ADAPTER.stream_error_event("broke off", content_type="application/json", started=False)
    assert orjson.loads(unopened) == [{"error": {"code": 502, "message": "broke off", "status": "UNAVAILABLE"}}]


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (400, "INVALID_ARGUMENT"),
        (404, "NOT_FOUND"),
        (413, "INVALID_ARGUMENT"),
        (429, "RESOURCE_EXHAUSTED"),
        (502, "UNAVAILABLE"),
        (504, "DEADLINE_EXCEEDED"),
        (418, "INVALID_ARGUMENT"),
        (599, "INTERNAL"),
    ],
)
def test_error_envelope(status, name):
    body = orjson.loads(ADAPTER.error_body(status, "why", "kind"))
    assert body == {"error": {"code": status, "message": "why", "status": name}}
