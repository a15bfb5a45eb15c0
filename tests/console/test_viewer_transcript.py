"""Reading records for the viewer: each wire format's request and answer, whole or streamed, read by the adapter of
the provider and route the record names (never guessed from the body), and the fallbacks."""

from __future__ import annotations

import json
from typing import Any

from services.console.transcript import Conversation, read_answer, read_request
from tests.support.detail_page import TRUNCATED


def record(
    provider: str,
    route: str,
    request: Any = None,
    response: Any = None,
    *,
    stream: bool = False,
    status: int | None = 200,
) -> dict[str, Any]:
    as_text = lambda body: body if body is None or isinstance(body, str) else json.dumps(body)  # noqa: E731
    return {
        "provider": provider,
        "route": route,
        "request_received": as_text(request),
        "response_body": as_text(response),
        "stream": stream,
        "status": status,
    }


def kinds(message) -> list[str]:
    shown = ["tool_result"] if message.tool_result is not None else []
    if not shown:
        shown = [part.kind for part in message.parts] or (["text"] if message.text else [])
    return shown + ["tool_call"] * len(message.tool_calls)


def shape(conversation: Conversation | None) -> list[tuple[str, list[str]]]:
    assert conversation is not None
    return [(turn.role, [k for m in turn.messages for k in kinds(m)]) for turn in conversation.turns]


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


CHAT_REQUEST = {
    "model": "gpt-4o",
    "messages": [
        {"role": "developer", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look at"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
                {"type": "file", "file": {"file_id": "file-1"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "found it"},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "I will not."}]},
    ],
    "tools": [{"type": "function", "function": {"name": "lookup"}}],
}


def test_openai_chat_request_with_media_tool_call_result_and_refusal():
    for provider in ("openai", "local-llm"):  # a custom provider speaks OpenAI chat
        conversation = read_request(record(provider, "/chat/completions", CHAT_REQUEST))
        assert shape(conversation) == [
            ("system", ["text"]),
            ("user", ["text", "media", "media", "media"]),
            ("assistant", ["tool_call"]),
            ("tool", ["tool_result"]),
            ("assistant", ["refusal"]),
        ]
        assert conversation.wire_format == "OpenAI chat completions"
        assert [p.media for p in conversation.turns[1].messages[0].parts[1:]] == ["image", "audio", "file"]
        call = conversation.turns[2].messages[0].tool_calls[0]
        assert (call.name, call.id, call.arguments) == ("lookup", "call_1", {"q": "x"})
        result = conversation.turns[3].messages[0].tool_result
        assert (result.tool_call_id, result.name, result.content) == ("call_1", "lookup", "found it")
        assert conversation.turns[4].messages[0].parts[0].text == "I will not."
        assert conversation.tools == ["lookup"]


ANTHROPIC_REQUEST = {
    "model": "claude",
    "system": [{"type": "text", "text": "You are careful."}],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "hi"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "The user wants a listing.", "signature": "x"},
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
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "tu_1", "content": "again"},
                {"type": "text", "text": "what now?"},
            ],
        },
    ],
    "tools": [{"name": "ls", "input_schema": {"type": "object"}}],
}


def test_anthropic_request_with_system_media_thinking_and_tool_result_error():
    conversation = read_request(record("anthropic", "/v1/messages", ANTHROPIC_REQUEST))
    assert shape(conversation) == [
        ("system", ["text"]),
        ("user", ["text", "media", "media"]),
        ("assistant", ["reasoning", "text", "tool_call"]),
        ("tool", ["tool_result"]),
        ("user", ["tool_result", "text"]),  # text beside a tool result: the user speaking, in one turn
    ]
    assert conversation.wire_format == "Anthropic messages"
    assert conversation.turns[0].messages[0].text == "You are careful."
    assert [p.media for p in conversation.turns[1].messages[0].parts[1:]] == ["image", "document"]
    assert conversation.turns[2].messages[0].parts[0].text == "The user wants a listing."
    result = conversation.turns[3].messages[0].tool_result
    assert (result.content, result.tool_call_id, result.name, result.is_error) == ("denied", "tu_1", "ls", True)
    assert conversation.tools == ["ls"]


def test_gemini_request_with_function_call_response_media_and_thought():
    body = {
        "systemInstruction": {"parts": [{"text": "Be nice."}]},
        "contents": [
            {
                "role": "user",
                "parts": [{"text": "weather?"}, {"inlineData": {"mimeType": "image/jpeg", "data": "AAAA"}}],
            },
            {
                "role": "model",
                "parts": [
                    {"text": "Oslo it is.", "thought": True},
                    {"functionCall": {"name": "weather", "args": {"city": "Oslo"}}},
                ],
            },
            {"role": "user", "parts": [{"functionResponse": {"name": "weather", "response": {"t": 3}}}]},
            {"role": "user", "parts": [{"fileData": {"mimeType": "application/pdf", "fileUri": "gs://x"}}]},
        ],
        "tools": [{"functionDeclarations": [{"name": "weather"}]}],
    }
    conversation = read_request(record("gemini", "/v1beta/models/gemini-2.5-flash:generateContent", body))
    assert shape(conversation) == [
        ("system", ["text"]),
        ("user", ["text", "media"]),
        ("assistant", ["reasoning", "tool_call"]),
        ("tool", ["tool_result"]),
        ("user", ["media"]),
    ]
    assert conversation.wire_format == "Gemini generateContent"
    assert conversation.turns[1].messages[0].parts[1].media == "image"
    assert conversation.turns[4].messages[0].parts[0].media == "file"
    result = conversation.turns[3].messages[0].tool_result
    assert (json.loads(result.content), result.name) == ({"t": 3}, "weather")
    assert conversation.tools == ["weather"]


def test_openai_responses_request_string_items_reasoning_and_unknown_items():
    plain = read_request(record("openai", "/responses", {"model": "gpt-4.1", "input": "hello"}))
    assert shape(plain) == [("user", ["text"])]
    assert plain.wire_format == "OpenAI Responses"
    body = {
        "instructions": "Short answers.",
        "input": [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "find"},
                    {"type": "input_image", "image_url": "https://example.com/a.png"},
                    {"type": "input_file", "file_id": "file-1"},
                ],
            },
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Search first."}]},
            {"type": "function_call", "call_id": "fc_1", "name": "search", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "fc_1", "output": "results"},
            {"type": "item_reference", "id": "msg_9"},
        ],
        "tools": [{"type": "function", "name": "search"}, {"type": "web_search_preview"}],
    }
    conversation = read_request(record("openai", "/responses", body))
    assert conversation.tools == ["search", "web_search_preview"]
    assert shape(conversation) == [
        ("system", ["text"]),
        ("user", ["text", "media", "media"]),
        ("assistant", ["reasoning"]),
        ("assistant", ["tool_call"]),
        ("tool", ["tool_result"]),
        ("assistant", ["other"]),
    ]
    assert conversation.turns[2].messages[0].parts[0].text == "Search first."
    assert json.loads(conversation.turns[5].messages[0].parts[0].text) == {"type": "item_reference", "id": "msg_9"}


def test_embeddings_inputs_are_shown_as_what_the_user_sent():
    conversation = read_request(record("openai", "/embeddings", {"model": "e", "input": ["one", "two"]}))
    assert shape(conversation) == [("user", ["text"]), ("user", ["text"])]
    assert conversation.wire_format == "OpenAI embeddings"
    assert read_answer(record("openai", "/embeddings", response={"object": "list", "data": []})) is None


def test_the_record_decides_the_format_not_the_body():
    """An Anthropic-shaped body recorded as an OpenAI chat request is read as OpenAI chat: its top-level ``system``
    is nothing in that format, and its ``tool_use`` blocks are pieces OpenAI does not know."""
    body = {
        "system": "You are careful.",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "ls", "input": {}}]},
        ],
    }
    as_openai = read_request(record("openai", "/chat/completions", body))
    assert shape(as_openai) == [("user", ["text"]), ("assistant", ["other"])]
    assert as_openai.wire_format == "OpenAI chat completions"
    as_anthropic = read_request(record("anthropic", "/v1/messages", body))
    assert shape(as_anthropic) == [("system", ["text"]), ("user", ["text"]), ("assistant", ["tool_call"])]
    # A Gemini answer recorded under OpenAI chat holds nothing OpenAI chat reads.
    gemini_answer = {"candidates": [{"content": {"parts": [{"text": "yo"}]}}]}
    assert read_answer(record("openai", "/chat/completions", response=gemini_answer)) is None
    assert read_answer(record("gemini", "/v1beta/models/g:generateContent", response=gemini_answer)).text == "yo"


def test_unreadable_requests_fall_back_to_none():
    cut = json.dumps(CHAT_REQUEST)[:150] + TRUNCATED
    assert read_request(record("openai", "/chat/completions", cut)) is None
    assert read_request(record("openai", "/chat/completions", "not json")) is None
    assert read_request(record("openai", "/embeddings", {"input": 3})) is None
    assert read_request(record("openai", "/chat/completions", {"messages": "nope"})) is None
    assert read_request(record("openai", "/chat/completions", [1, 2])) is None
    assert read_request(record("anthropic", "/v1/messages", {"messages": [{"role": "user", "content": 7}]})) is not None
    assert read_request(record("gemini", "/v1beta/models/g:generateContent", {"contents": "nope"})) is None
    assert read_request(record("openai", "/chat/completions", "")) is None
    assert read_request(record("openai", "/chat/completions", None)) is None


def test_whole_answers_of_each_format():
    chat = {
        "choices": [
            {
                "message": {
                    "content": "hi",
                    "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": '{"a":1}'}}],
                },
                "finish_reason": "tool_calls",
            }
        ]
    }
    answer = read_answer(record("openai", "/chat/completions", response=chat))
    assert answer.text == "hi" and [(c.name, c.arguments) for c in answer.tool_calls] == [("f", {"a": 1})]
    refused = {"choices": [{"message": {"content": None, "refusal": "I can't help with that."}}]}
    answer = read_answer(record("local-llm", "/v1/chat/completions", response=refused))
    assert [(p.kind, p.text) for p in answer.parts] == [("refusal", "I can't help with that.")]

    anthropic = {
        "type": "message",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "s"},
            {"type": "text", "text": "ok"},
            {"type": "tool_use", "id": "t", "name": "g", "input": {}},
        ],
    }
    answer = read_answer(record("anthropic", "/v1/messages", response=anthropic))
    assert answer.text == "ok" and [c.name for c in answer.tool_calls] == ["g"]
    assert [p.kind for p in answer.parts] == ["reasoning", "text"]

    gemini = {"candidates": [{"content": {"parts": [{"text": "yo"}, {"functionCall": {"name": "h", "args": {}}}]}}]}
    answer = read_answer(record("gemini", "/v1beta/models/gemini-2.5-flash:generateContent", response=gemini))
    assert answer.text == "yo" and [c.name for c in answer.tool_calls] == ["h"]

    responses = {
        "object": "response",
        "status": "completed",
        "output": [
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "done"}]},
            {"type": "function_call", "call_id": "x", "name": "k", "arguments": "{}"},
        ],
    }
    answer = read_answer(record("openai", "/responses", response=responses))
    assert answer.text == "done" and [c.name for c in answer.tool_calls] == ["k"]

    assert read_answer(record("openai", "/chat/completions", response="<html>bad gateway</html>", status=502)) is None
    cut = json.dumps(chat)[:40] + TRUNCATED
    assert read_answer(record("openai", "/chat/completions", response=cut)) is None


def test_error_bodies_of_each_format():
    errors = {
        ("openai", "/chat/completions"): {"error": {"message": "rate limited", "type": "rate_limit_error"}},
        ("local-llm", "/chat/completions"): {"error": {"message": "rate limited", "type": "rate_limit_error"}},
        ("openai", "/responses"): {"error": {"message": "rate limited", "type": "rate_limit_error"}},
        ("anthropic", "/v1/messages"): {
            "type": "error",
            "error": {"type": "rate_limit_error", "message": "rate limited"},
        },
        ("gemini", "/v1beta/models/g:generateContent"): {
            "error": {"code": 429, "message": "rate limited", "status": "RESOURCE_EXHAUSTED"}
        },
        ("gemini", "/v1beta/models/g:streamGenerateContent"): [
            {"error": {"code": 429, "message": "rate limited", "status": "RESOURCE_EXHAUSTED"}}
        ],
    }
    for (provider, route), body in errors.items():
        for stream in (False, True):  # an error status is one JSON body, whatever the request asked for
            answer = read_answer(record(provider, route, response=body, stream=stream, status=429))
            assert answer is not None and answer.error == "rate limited", (provider, route, stream)


def test_streamed_answers_of_each_format():
    chat = sse(
        {"choices": [{"index": 0, "delta": {"content": "Hel"}}]},
        {"choices": [{"index": 0, "delta": {"content": "lo"}}]},
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": '{"a'}}]},
                }
            ]
        },
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '":1}'}}]}}]},
        "[DONE]",
    )
    answer = read_answer(record("openai", "/chat/completions", response=chat, stream=True))
    assert answer.text == "Hello"
    assert [(c.name, c.id, c.arguments) for c in answer.tool_calls] == [("f", "c1", {"a": 1})]

    anthropic = sse(
        {"type": "message_start", "message": {"usage": {"input_tokens": 3}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Greet."}},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Bon"}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "jour"}},
        {"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "t1", "name": "g"}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": '{"b":'}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "2}"}},
        {"type": "message_stop"},
        named=True,
    )
    answer = read_answer(record("anthropic", "/v1/messages", response=anthropic, stream=True))
    assert answer.text == "Bonjour"
    assert [(c.name, c.arguments) for c in answer.tool_calls] == [("g", {"b": 2})]
    assert [(p.kind, p.text) for p in answer.parts] == [("reasoning", "Greet."), ("text", "Bonjour")]

    gemini_route = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    chunks = [
        {"candidates": [{"content": {"parts": [{"text": "a"}]}}]},
        {"candidates": [{"content": {"parts": [{"text": "b"}]}}]},
    ]
    assert read_answer(record("gemini", gemini_route, response=sse(*chunks), stream=True)).text == "ab"
    assert read_answer(record("gemini", gemini_route, response=json.dumps(chunks), stream=True)).text == "ab"

    item = {"type": "message", "id": "m", "role": "assistant", "content": []}
    responses = sse(
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": "par"},
        {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": "tial"},
        named=True,
    )
    assert read_answer(record("openai", "/responses", response=responses, stream=True)).text == "partial"
    whole = {**item, "content": [{"type": "output_text", "text": "whole"}]}
    completed = responses + sse(
        {"type": "response.completed", "response": {"status": "completed", "output": [whole]}}, named=True
    )
    assert read_answer(record("openai", "/responses", response=completed, stream=True)).text == "whole"


def test_in_stream_errors_of_each_format():
    chat = sse({"choices": [{"index": 0, "delta": {"content": "x"}}]}, {"error": {"message": "upstream died"}})
    anthropic = sse(
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": "x"}},
        {"type": "error", "error": {"type": "overloaded_error", "message": "upstream died"}},
        named=True,
    )
    responses = sse(
        {"type": "response.output_item.added", "output_index": 0, "item": {"type": "message", "content": []}},
        {"type": "response.output_text.delta", "output_index": 0, "delta": "x"},
        {"type": "error", "code": "upstream_error", "message": "upstream died", "sequence_number": 2},
        named=True,
    )
    gemini = sse(
        {"candidates": [{"content": {"parts": [{"text": "x"}]}}]},
        {"error": {"code": 502, "message": "upstream died", "status": "UNAVAILABLE"}},
    )
    streams = {
        ("openai", "/chat/completions"): chat,
        ("anthropic", "/v1/messages"): anthropic,
        ("openai", "/responses"): responses,
        ("gemini", "/v1beta/models/g:streamGenerateContent"): gemini,
    }
    for (provider, route), body in streams.items():
        answer = read_answer(record(provider, route, response=body, stream=True))
        assert (answer.text, answer.error) == ("x", "upstream died"), provider


def test_cut_streams_show_what_arrived_and_nonsense_shows_nothing():
    chat = sse({"choices": [{"index": 0, "delta": {"content": "Hel"}}]}) + 'data: {"choices": [{"ind' + TRUNCATED
    assert read_answer(record("openai", "/chat/completions", response=chat, stream=True)).text == "Hel"
    assert read_answer(record("openai", "/chat/completions", response="data: nonsense\n\n", stream=True)) is None
    assert read_answer(record("openai", "/chat/completions", response=None, status=None)) is None
