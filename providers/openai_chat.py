"""OpenAI chat completions (``/chat/completions``), which the OpenAI-compatible providers copy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from providers.common import (
    ViewCache,
    as_dict,
    as_int,
    as_list,
    as_str,
    cache_key,
    optional_str,
    parse_arguments,
    parts_text,
)
from providers.held_stream import HeldStream
from providers.sse import encode_event, iter_events
from schemas.view import CompletionView, ConversationView, Message, ToolCall, ToolDefinition, ToolResult, Usage


def usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    details = as_dict(raw.get("prompt_tokens_details"))
    return Usage(
        input_tokens=as_int(raw.get("prompt_tokens")),
        output_tokens=as_int(raw.get("completion_tokens")),
        cached_tokens=as_int(details.get("cached_tokens")),
    )


def _tool_call(raw: dict[str, Any]) -> ToolCall:
    function = as_dict(raw.get("function"))
    return ToolCall(
        id=as_str(raw.get("id")),
        name=as_str(function.get("name")),
        arguments=parse_arguments(function.get("arguments")),
    )


_MESSAGES = ViewCache()
_TOOLS = ViewCache(capacity=2_000)


def _message(index: int, raw: dict[str, Any], names: dict[str, str]) -> Message | None:
    role = raw.get("role")
    text = parts_text(raw.get("content"))
    if role in ("system", "developer"):
        return Message(role="system", text=text, index=index)
    if role == "user":
        return Message(role="user", text=text, index=index)
    if role == "assistant":
        calls = [_tool_call(call) for call in as_list(raw.get("tool_calls")) if isinstance(call, dict)]
        return Message(role="assistant", text=text, tool_calls=calls, index=index)
    if role in ("tool", "function"):
        call_id = as_str(raw.get("tool_call_id"))
        name = optional_str(raw.get("name")) or names.get(call_id)
        result = ToolResult(tool_call_id=call_id, name=name, content=text)
        return Message(role="tool", text=text, tool_result=result, index=index)
    return None


def _tools(raw_tools: list[Any]) -> list[ToolDefinition]:
    return [
        ToolDefinition(
            name=as_str(function.get("name")),
            description=optional_str(function.get("description")),
            parameters=function.get("parameters") if isinstance(function.get("parameters"), dict) else None,
        )
        for tool in raw_tools
        if isinstance(tool, dict) and tool.get("type", "function") == "function"
        for function in (as_dict(tool.get("function")),)
    ]


def request_view(provider: str, model: str, stream: bool, body: dict[str, Any]) -> ConversationView:
    messages: list[Message] = []
    names: dict[str, str] = {}
    cached = _MESSAGES.get  # a long history makes this loop hot: names looked up once
    for index, raw in enumerate(as_list(body.get("messages"))):
        if not isinstance(raw, dict):
            continue
        # A tool result's view depends on the calls before it (its tool's name), so they are part of its key.
        key = cache_key(index, raw, names.get(str(raw.get("tool_call_id", ""))) if raw.get("role") == "tool" else 0)
        message = cached(key)
        if message is None:
            message = _MESSAGES.put(key, _message(index, raw, names))
        if message is None:
            continue
        if message.tool_calls:
            names.update((call.id, call.name) for call in message.tool_calls)
        messages.append(message)
    raw_tools = as_list(body.get("tools"))
    tools_key = cache_key(raw_tools)
    tools = _TOOLS.get(tools_key)
    if tools is None:
        tools = _TOOLS.put(tools_key, _tools(raw_tools))
    return ConversationView(provider=provider, model=model, messages=messages, tools=list(tools), stream=stream)


def completion_view(body: dict[str, Any]) -> CompletionView:
    choices = as_list(body.get("choices"))
    first = as_dict(choices[0]) if choices else {}
    message = as_dict(first.get("message"))
    return CompletionView(
        text=parts_text(message.get("content")),
        tool_calls=[_tool_call(call) for call in as_list(message.get("tool_calls")) if isinstance(call, dict)],
        usage=usage(body.get("usage")),
        finish_reason=optional_str(first.get("finish_reason")),
    )


def stream_view(stream: bytes) -> CompletionView:
    text: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    found = Usage()
    finish_reason: str | None = None
    errored = False
    for _, data in iter_events(stream):
        if not data or data == "[DONE]":
            continue
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(chunk, dict):
            continue
        if chunk.get("error"):
            errored = True
        if chunk.get("usage"):
            found = usage(chunk["usage"])
        for raw_choice in as_list(chunk.get("choices")):
            choice = as_dict(raw_choice)
            if choice.get("index", 0) != 0:
                continue  # only the first choice is recorded, as for a non-streamed answer
            delta = as_dict(choice.get("delta"))
            if isinstance(delta.get("content"), str):
                text.append(delta["content"])
            for raw_call in as_list(delta.get("tool_calls")):
                call = as_dict(raw_call)
                index = call.get("index", 0)
                slot = calls.setdefault(index if isinstance(index, int) else 0, {"id": "", "name": "", "arguments": ""})
                slot["id"] = as_str(call.get("id")) or slot["id"]
                function = as_dict(call.get("function"))
                slot["name"] = as_str(function.get("name")) or slot["name"]
                slot["arguments"] += as_str(function.get("arguments"))
            finish_reason = optional_str(choice.get("finish_reason")) or finish_reason
    return CompletionView(
        text="".join(text),
        tool_calls=[
            ToolCall(id=c["id"], name=c["name"], arguments=parse_arguments(c["arguments"]))
            for _, c in sorted(calls.items())
        ],
        usage=found,
        finish_reason=finish_reason or ("error" if errored else None),
    )


def error_payload(message: str, kind: str, code: str | None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


def stream_error_event(message: str) -> bytes:
    """What the API sends when a chat stream fails: a data line holding an error object (the SDKs raise on it)."""
    return encode_event(error_payload(message, "upstream_error", None))


# -- inline policy support ------------------------------------------------------------------------------------------


def replace_tool_results(body: dict[str, Any], replacements: Mapping[str, str]) -> None:
    for message in body.get("messages") or []:
        if isinstance(message, dict) and message.get("role") == "tool":
            replacement = replacements.get(str(message.get("tool_call_id", "")))
            if replacement is not None:
                message["content"] = replacement


def refusal_body(body: dict[str, Any], text: str) -> bytes:
    for choice in body.get("choices") or []:
        if isinstance(choice, dict):
            choice["message"] = {"role": "assistant", "content": text, "refusal": None}
            choice["finish_reason"] = "stop"
    return orjson.dumps(body)


class HeldChatStream(HeldStream):
    """Chat completion chunks: held from the first chunk that mentions tool calls (a delta or the finish reason)."""

    def starts_hold(self, event: bytes) -> bool:
        return b'"tool_calls"' in event

    def refusal_events(self, held: list[bytes], text: str) -> bytes:
        first: dict[str, Any] = {}
        usage_chunks: list[bytes] = []
        done = False
        for event in held:
            for _, data in iter_events(event):
                if data == "[DONE]":
                    done = True
                    continue
                try:
                    chunk = orjson.loads(data)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(chunk, dict):
                    first = first or chunk
                    if chunk.get("usage") and not chunk.get("choices"):
                        usage_chunks.append(event)
        envelope = {k: first[k] for k in ("id", "object", "created", "model", "system_fingerprint") if k in first}
        envelope.setdefault("object", "chat.completion.chunk")
        text_chunk = {**envelope, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
        stop_chunk = {**envelope, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        out = [encode_event(orjson.dumps(text_chunk)), encode_event(orjson.dumps(stop_chunk)), *usage_chunks]
        if done:
            out.append(b"data: [DONE]\n\n")
        return b"".join(out)
