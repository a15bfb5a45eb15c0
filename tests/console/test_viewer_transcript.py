"""Reading recorded bodies for the viewer: each provider's request and answer, whole or streamed, and the fallbacks."""

from __future__ import annotations

import json

from services.console.transcript import read_answer, read_request


def roles_and_kinds(conversation) -> list[tuple[str, list[str]]]:
    return [(turn.role, [part.kind for part in turn.parts]) for turn in conversation.turns]


def sse(*events: dict | str, named: bool = False) -> str:
    lines = []
    for event in events:
        if isinstance(event, str):
            lines.append(f"data: {event}\n\n")
        elif named:
            lines.append(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n")
        else:
            lines.append(f"data: {json.dumps(event)}\n\n")
    return "".join(lines)


def test_openai_chat_request_with_tool_call_and_result():
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Look at"}, {"type": "image_url", "image_url": {}}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "found it"},
        ],
        "tools": [{"type": "function", "function": {"name": "lookup"}}],
    }
    conversation = read_request("openai", "/chat/completions", json.dumps(body))
    assert conversation is not None
    assert roles_and_kinds(conversation) == [
        ("system", ["text"]),
        ("user", ["text", "media"]),
        ("assistant", ["tool_call"]),
        ("tool", ["tool_result"]),
    ]
    call = conversation.turns[2].parts[0]
    assert (call.name, call.call_id, json.loads(call.text)) == ("lookup", "call_1", {"q": "x"})
    assert conversation.turns[3].parts[0].call_id == "call_1"
    assert conversation.tools == ["lookup"]


def test_anthropic_request_with_system_blocks_and_tool_result_error():
    body = {
        "model": "claude",
        "system": [{"type": "text", "text": "You are careful."}],
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "calling"},
                    {"type": "tool_use", "id": "tu_1", "name": "ls", "input": {"p": "/"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "tu_1",
                        "is_error": True,
                        "content": [{"type": "text", "text": "denied"}],
                    }
                ],
            },
        ],
    }
    conversation = read_request("anthropic", "/messages", json.dumps(body))
    assert conversation is not None
    assert roles_and_kinds(conversation) == [
        ("system", ["text"]),
        ("user", ["text"]),
        ("assistant", ["text", "tool_call"]),
        ("tool", ["tool_result"]),
    ]
    result = conversation.turns[3].parts[0]
    assert (result.text, result.call_id, result.is_error) == ("denied", "tu_1", True)


def test_gemini_request_with_function_call_and_response():
    body = {
        "systemInstruction": {"parts": [{"text": "Be nice."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "weather?"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "weather", "args": {"city": "Oslo"}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "weather", "response": {"t": 3}}}]},
        ],
        "tools": [{"functionDeclarations": [{"name": "weather"}]}],
    }
    conversation = read_request("gemini", "/models/gemini-2.5-flash:generateContent", json.dumps(body))
    assert conversation is not None
    assert roles_and_kinds(conversation) == [
        ("system", ["text"]),
        ("user", ["text"]),
        ("assistant", ["tool_call"]),
        ("tool", ["tool_result"]),
    ]
    assert json.loads(conversation.turns[3].parts[0].text) == {"t": 3}
    assert conversation.tools == ["weather"]


def test_openai_responses_request_string_and_items():
    assert roles_and_kinds(read_request("openai", "/responses", json.dumps({"input": "hello"}))) == [("user", ["text"])]
    body = {
        "instructions": "Short answers.",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "find"}]},
            {"type": "function_call", "call_id": "fc_1", "name": "search", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "fc_1", "output": "results"},
        ],
    }
    conversation = read_request("openai", "/responses", json.dumps(body))
    assert roles_and_kinds(conversation) == [
        ("system", ["text"]),
        ("user", ["text"]),
        ("assistant", ["tool_call"]),
        ("tool", ["tool_result"]),
    ]


def test_unreadable_requests_fall_back_to_none():
    assert read_request("openai", "/chat/completions", "not json") is None
    assert read_request("openai", "/embeddings", json.dumps({"input": 3})) is None
    assert read_request("openai", "/chat/completions", json.dumps({"messages": "nope"})) is None
    assert read_request("openai", "/chat/completions", json.dumps([1, 2])) is None
    assert read_request("openai", "/chat/completions", "") is None


def test_whole_answers_of_each_format():
    chat = {
        "choices": [
            {
                "message": {
                    "content": "hi",
                    "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": '{"a":1}'}}],
                }
            }
        ]
    }
    answer = read_answer(json.dumps(chat), stream=False)
    assert answer.text == "hi" and [c.name for c in answer.tool_calls] == ["f"]

    anthropic = {
        "type": "message",
        "content": [{"type": "text", "text": "ok"}, {"type": "tool_use", "id": "t", "name": "g", "input": {}}],
    }
    answer = read_answer(json.dumps(anthropic), stream=False)
    assert answer.text == "ok" and [c.name for c in answer.tool_calls] == ["g"]

    gemini = {"candidates": [{"content": {"parts": [{"text": "yo"}, {"functionCall": {"name": "h", "args": {}}}]}}]}
    answer = read_answer(json.dumps(gemini), stream=False)
    assert answer.text == "yo" and [c.name for c in answer.tool_calls] == ["h"]

    responses = {
        "object": "response",
        "output": [
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "done"}]},
            {"type": "function_call", "call_id": "x", "name": "k", "arguments": "{}"},
        ],
    }
    answer = read_answer(json.dumps(responses), stream=False)
    assert answer.text == "done" and [c.name for c in answer.tool_calls] == ["k"]

    assert read_answer(json.dumps({"error": {"message": "rate limited"}}), stream=False).error == "rate limited"
    assert read_answer("<html>bad gateway</html>", stream=False) is None


def test_streamed_answers_of_each_format():
    chat = sse(
        {"choices": [{"delta": {"content": "Hel"}}]},
        {"choices": [{"delta": {"content": "lo"}}]},
        {
            "choices": [
                {"delta": {"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": '{"a'}}]}}
            ]
        },
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": '":1}'}}]}}]},
        "[DONE]",
    )
    answer = read_answer(chat, stream=True)
    assert answer.text == "Hello"
    assert [(c.name, c.call_id, json.loads(c.text)) for c in answer.tool_calls] == [("f", "c1", {"a": 1})]

    anthropic = sse(
        {"type": "message_start", "message": {}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Bon"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "jour"}},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t1", "name": "g"}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"b":'}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "2}"}},
        {"type": "message_stop"},
        named=True,
    )
    answer = read_answer(anthropic, stream=True)
    assert answer.text == "Bonjour"
    assert [(c.name, json.loads(c.text)) for c in answer.tool_calls] == [("g", {"b": 2})]

    gemini = sse(
        {"candidates": [{"content": {"parts": [{"text": "a"}]}}]},
        {"candidates": [{"content": {"parts": [{"text": "b"}]}}]},
    )
    assert read_answer(gemini, stream=True).text == "ab"

    responses = sse(
        {"type": "response.output_text.delta", "delta": "par"},
        {"type": "response.output_text.delta", "delta": "tial"},
        named=True,
    )
    assert read_answer(responses, stream=True).text == "partial"
    completed = responses + sse(
        {
            "type": "response.completed",
            "response": {"output": [{"type": "message", "content": [{"type": "output_text", "text": "whole"}]}]},
        },
        named=True,
    )
    assert read_answer(completed, stream=True).text == "whole"

    in_stream_error = sse({"choices": [{"delta": {"content": "x"}}]}, {"error": {"message": "upstream died"}})
    answer = read_answer(in_stream_error, stream=True)
    assert (answer.text, answer.error) == ("x", "upstream died")
    assert read_answer("data: nonsense\n\n", stream=True) is None
