"""The Bedrock adapter and AWS's event-stream framing, on payloads as the Bedrock runtime API sends them: the
encoder's messages are read back by botocore's own decoder, a stream is split at message boundaries however it is cut,
and a held stream's refusal is a stream the SDK's parser accepts."""

from __future__ import annotations

import base64
import zlib

import orjson
import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer
from hypothesis import given
from hypothesis import strategies as st

from providers.bedrock import BedrockAdapter, chunk_event, split_route
from providers.eventstream import encode_event, encode_exception, encode_message, iter_messages, split_messages

ADAPTER = BedrockAdapter()
CONVERSE = "/model/us.anthropic.claude-sonnet-4-20250514-v1%3A0/converse"
STREAM = "/model/us.anthropic.claude-sonnet-4-20250514-v1%3A0/converse-stream"
INVOKE_STREAM = "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/invoke-with-response-stream"

REQUEST = {
    "system": [{"text": "You are terse."}, {"cachePoint": {"type": "default"}}],
    "messages": [
        {
            "role": "user",
            "content": [{"text": "Weather in Paris?"}, {"image": {"format": "png", "source": {"bytes": "iVBO"}}}],
        },
        {
            "role": "assistant",
            "content": [
                {"text": "Checking."},
                {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": "tooluse_1", "content": [{"json": {"temp": 21}}], "status": "success"}},
                {"text": "And Rome?"},
            ],
        },
    ],
    "toolConfig": {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "description": "Weather by city",
                    "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}},
                }
            }
        ]
    },
    "inferenceConfig": {"maxTokens": 512},
}


def converse_stream(text: str = "Sunny", call: bool = True) -> bytes:
    events = [encode_event("messageStart", {"role": "assistant"})]
    events += [encode_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}}) for piece in text]
    events.append(encode_event("contentBlockStop", {"contentBlockIndex": 0}))
    if call:
        start = {"toolUse": {"toolUseId": "tooluse_2", "name": "get_weather"}}
        events.append(encode_event("contentBlockStart", {"contentBlockIndex": 1, "start": start}))
        for piece in ('{"city"', ': "Rome"}'):
            events.append(
                encode_event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": piece}}})
            )
        events.append(encode_event("contentBlockStop", {"contentBlockIndex": 1}))
    events.append(encode_event("messageStop", {"stopReason": "tool_use" if call else "end_turn"}))
    usage = {"inputTokens": 30, "outputTokens": 12, "totalTokens": 52, "cacheReadInputTokens": 10}
    events.append(encode_event("metadata", {"usage": usage, "metrics": {"latencyMs": 300}}))
    return b"".join(events)


def decoded(stream: bytes) -> list[tuple[dict, dict]]:
    """Every message as botocore reads it (its CRCs checked), with its payload parsed."""
    buffer = EventStreamBuffer()
    buffer.add_data(stream)
    return [(message.headers, orjson.loads(message.payload)) for message in buffer]


def test_the_encoder_writes_what_botocores_decoder_reads():
    stream = encode_event("contentBlockDelta", {"delta": {"text": "héllo"}}) + encode_exception(
        "throttlingException", "slow"
    )
    assert decoded(stream) == [
        (
            {":event-type": "contentBlockDelta", ":content-type": "application/json", ":message-type": "event"},
            {"delta": {"text": "héllo"}},
        ),
        (
            {
                ":exception-type": "throttlingException",
                ":content-type": "application/json",
                ":message-type": "exception",
            },
            {"message": "slow"},
        ),
    ]


def test_a_damaged_message_fails_botocores_checksum_and_is_not_read():
    message = bytearray(encode_message({":event-type": "chunk"}, b'{"bytes": ""}'))
    message[-6] ^= 0x01  # a payload byte
    buffer = EventStreamBuffer()
    buffer.add_data(bytes(message))
    with pytest.raises(ChecksumMismatch):
        list(buffer)
    assert list(iter_messages(bytes(message))) == []
    assert zlib.crc32(bytes(message[:-4])) != int.from_bytes(message[-4:], "big")


@given(st.lists(st.integers(min_value=1, max_value=200), min_size=1, max_size=40))
def test_a_stream_is_split_at_message_boundaries_however_it_is_cut(cuts):
    stream = converse_stream()
    pending, messages, at = b"", [], 0
    for size in [*cuts, len(stream)]:
        pending += stream[at : at + size]
        at += size
        whole, pending = split_messages(pending)
        messages += whole
    assert pending == b"" and b"".join(messages) == stream
    assert all(len(decoded(message)) == 1 for message in messages)


def test_routes_name_the_model_even_when_it_is_an_arn():
    arn = "arn%3Aaws%3Abedrock%3Aus-east-1%3A123%3Ainference-profile%2Fus.anthropic.claude-v1%3A0"
    assert split_route(f"/model/{arn}/converse-stream")[0] == (
        "arn:aws:bedrock:us-east-1:123:inference-profile/us.anthropic.claude-v1:0"
    )
    meta = ADAPTER.request_meta(STREAM, REQUEST, "")
    assert meta.model == "us.anthropic.claude-sonnet-4-20250514-v1:0" and meta.stream is True
    assert ADAPTER.request_meta(CONVERSE, REQUEST, "").stream is False


def test_the_request_view_reads_system_text_images_tool_uses_results_and_tools():
    view = ADAPTER.request_view(CONVERSE, REQUEST)
    assert view.wire_format == "Bedrock Converse" and view.provider == "bedrock"
    roles = [(m.role, m.index) for m in view.messages]
    assert roles == [("system", -1), ("user", 0), ("assistant", 1), ("tool", 2), ("user", 2)]
    assert view.messages[0].text == "You are terse."
    assert [p.kind for p in view.messages[1].parts] == ["text", "media"]
    (call,) = view.messages[2].tool_calls
    assert (call.id, call.name, call.arguments) == ("tooluse_1", "get_weather", {"city": "Paris"})
    result = view.messages[3].tool_result
    assert result.name == "get_weather" and result.content == '{"temp":21}'
    assert view.messages[4].text == "And Rome?"
    assert [(t.name, t.parameters["type"]) for t in view.tools] == [("get_weather", "object")]


def test_the_completion_and_stream_views_agree():
    answer = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"text": "Sunny"},
                    {"toolUse": {"toolUseId": "tooluse_2", "name": "get_weather", "input": {"city": "Rome"}}},
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": {"inputTokens": 30, "outputTokens": 12, "totalTokens": 52, "cacheReadInputTokens": 10},
    }
    whole = ADAPTER.completion_view(CONVERSE, answer)
    streamed = ADAPTER.stream_view(STREAM, converse_stream())
    for view in (whole, streamed):
        assert view.text == "Sunny" and view.finish_reason == "tool_use"
        assert [(c.id, c.name, c.arguments) for c in view.tool_calls] == [
            ("tooluse_2", "get_weather", {"city": "Rome"})
        ]
        assert (view.usage.input_tokens, view.usage.cached_tokens, view.usage.output_tokens) == (40, 10, 12)
    assert ADAPTER.completion_view(CONVERSE, {"message": "Too many requests"}).error == "Too many requests"


def test_an_exception_in_the_stream_is_its_error():
    messages, _ = split_messages(converse_stream(call=False))
    stream = b"".join(messages[:-2]) + encode_exception("modelStreamErrorException", "the model broke")
    view = ADAPTER.stream_view(STREAM, stream)
    assert view.error == "the model broke" and view.finish_reason == "error" and view.text == "Sunny"


@pytest.mark.parametrize("cut", [1, 7, 64, 10_000])
def test_a_held_converse_stream_refusal_is_a_stream_botocore_reads(cut):
    stream = converse_stream()
    held = ADAPTER.held_stream(STREAM, "application/vnd.amazon.eventstream")
    sent = b"".join(held.feed(stream[i : i + cut]) for i in range(0, len(stream), cut))
    assert held.holding
    refusal = held.refuse("I may not call get_weather.")
    messages = decoded(sent + refusal)
    kinds = [headers[":event-type"] for headers, _ in messages]
    assert "contentBlockStart" not in kinds and kinds[-2:] == ["messageStop", "metadata"]
    assert messages[-3][1] == {"contentBlockIndex": 1}  # the refusal's block follows the text block the client saw
    view = ADAPTER.stream_view(STREAM, sent + refusal)
    assert (
        view.tool_calls == [] and view.text == "Sunny\nI may not call get_weather." and view.finish_reason == "end_turn"
    )
    assert view.usage.output_tokens == 12  # the held metadata's usage


def test_a_released_converse_stream_is_the_upstreams_bytes():
    stream = converse_stream()
    held = ADAPTER.held_stream(STREAM, "application/vnd.amazon.eventstream")
    assert held.feed(stream) + held.release() == stream


def anthropic_chunks(events: list[dict]) -> bytes:
    return b"".join(chunk_event(orjson.dumps(event)) for event in events)


def test_an_invoke_stream_is_read_as_anthropics_and_its_refusal_is_chunks():
    events = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "content": [],
                "usage": {"input_tokens": 9, "output_tokens": 1},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me read it."}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"path": "/etc/passwd"}'},
        },
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 20}},
        {"type": "message_stop", "amazon-bedrock-invocationMetrics": {"inputTokenCount": 9, "outputTokenCount": 20}},
    ]
    stream = anthropic_chunks(events)
    view = ADAPTER.stream_view(INVOKE_STREAM, stream)
    assert [(c.name, c.arguments) for c in view.tool_calls] == [("read_file", {"path": "/etc/passwd"})]
    assert (view.usage.input_tokens, view.usage.output_tokens) == (9, 20)
    held = ADAPTER.held_stream(INVOKE_STREAM, "application/vnd.amazon.eventstream")
    sent = held.feed(stream)
    refusal = held.refuse("No.")
    inner = [orjson.loads(base64.b64decode(payload["bytes"])) for _, payload in decoded(sent + refusal)]
    assert [event["type"] for event in inner][-5:] == [
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert inner[-5]["index"] == 1 and inner[-4]["delta"]["text"] == "No."
    assert not any(event.get("content_block", {}).get("type") == "tool_use" for event in inner)


def test_errors_are_bedrocks_shape_with_their_name_in_a_header():
    assert orjson.loads(ADAPTER.error_body(429, "slow down", "rate_limit_error")) == {"message": "slow down"}
    assert ADAPTER.error_headers(429) == [(b"x-amzn-errortype", b"ThrottlingException")]
    assert ADAPTER.error_headers(403) == [(b"x-amzn-errortype", b"AccessDeniedException")]
    assert ADAPTER.error_headers(502) == [(b"x-amzn-errortype", b"InternalServerException")]
    (message,) = decoded(ADAPTER.stream_error_event("broke off"))
    assert message[0][":message-type"] == "exception" and message[1] == {"message": "broke off"}


def test_tool_results_are_replaced_and_refusals_are_plain_turns():
    body = orjson.loads(orjson.dumps(REQUEST))
    ADAPTER.replace_tool_results(CONVERSE, body, {"tooluse_1": "[withheld]"})
    assert body["messages"][2]["content"][0]["toolResult"]["content"] == [{"text": "[withheld]"}]
    refusal = orjson.loads(ADAPTER.refusal_body(CONVERSE, {"output": {}, "usage": {"outputTokens": 3}}, "No."))
    assert refusal["output"]["message"]["content"] == [{"text": "No."}] and refusal["stopReason"] == "end_turn"
    assert refusal["usage"] == {"outputTokens": 3}


def test_a_recorded_stream_is_text_that_reads_as_the_stream_did():
    stream = converse_stream()
    recorded = ADAPTER.recorded_answer(STREAM, stream)
    assert recorded.decode("utf-8").startswith('event: messageStart\ndata: {"role":"assistant"}\n\n')
    assert ADAPTER.stream_view(STREAM, recorded) == ADAPTER.stream_view(STREAM, stream)
    cut = ADAPTER.recorded_answer(STREAM, stream[:-10])
    assert cut.endswith(b"bytes that are not a whole event-stream message\n\n")
    assert ADAPTER.recorded_answer(CONVERSE, b'{"message": "bad"}') == b'{"message": "bad"}'


def test_a_recorded_invoke_stream_holds_anthropics_events_in_words():
    events = [
        {"type": "message_start", "message": {"id": "m", "usage": {"input_tokens": 3, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hello"}},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}},
    ]
    stream = anthropic_chunks(events) + encode_exception("throttlingException", "slow")
    recorded = ADAPTER.recorded_answer(INVOKE_STREAM, stream)
    assert b'"text_delta"' in recorded and b"event: exception:throttlingException" in recorded
    assert ADAPTER.stream_view(INVOKE_STREAM, recorded) == ADAPTER.stream_view(INVOKE_STREAM, stream)
    assert ADAPTER.stream_view(INVOKE_STREAM, recorded).text == "hello"
