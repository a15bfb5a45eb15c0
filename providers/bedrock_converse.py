"""Bedrock's Converse API (``/model/{modelId}/converse`` and ``…/converse-stream``): messages of content blocks
(``text``, ``image``, ``document``, ``toolUse``, ``toolResult``, ``reasoningContent``…), a separate ``system``, tools
in ``toolConfig``; the stream is AWS's binary event stream (messageStart, contentBlockStart for a tool use,
contentBlockDelta, contentBlockStop, messageStop, metadata with the usage)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from providers.common import (
    as_dict,
    as_int,
    as_list,
    as_str,
    beyond_text,
    json_text,
    optional_str,
    read_arguments,
    usage_with_cache_apart,
)
from providers.eventstream import encode_event, iter_messages, json_payload, read_messages, split_messages
from providers.held_stream import HeldStream
from schemas.view import CompletionView, Message, Part, ToolCall, ToolDefinition, ToolResult, Usage

WIRE_FORMAT = "Bedrock Converse"
_MEDIA = ("image", "document", "video", "audio")
_APART = ("toolUse", "toolResult")


def usage(raw: Any) -> Usage:
    """Converse counts cache reads and writes apart from ``inputTokens`` (``totalTokens`` is the sum of all four);
    the common view's input is their sum."""
    return usage_with_cache_apart(
        as_dict(raw), "inputTokens", "outputTokens", "cacheReadInputTokens", "cacheWriteInputTokens"
    )


def _block_text(block: Any) -> str | None:
    """The words of a text block (a guard-content text counts: the model reads it)."""
    if not isinstance(block, dict):
        return None
    if isinstance(block.get("text"), str):
        return block["text"]
    guarded = as_dict(as_dict(block.get("guardContent")).get("text")).get("text")
    return guarded if isinstance(guarded, str) else None


def blocks_text(blocks: list[Any]) -> str:
    return "\n".join(text for text in map(_block_text, blocks) if text is not None)


def _part(block: dict[str, Any]) -> Part:
    text = _block_text(block)
    if text is not None:
        return Part(kind="text", text=text)
    reasoning = as_dict(block.get("reasoningContent"))
    if reasoning:
        return Part(kind="reasoning", text=as_str(as_dict(reasoning.get("reasoningText")).get("text")))
    for media in _MEDIA:
        if media in block:
            return Part(kind="media", media=media)
    return Part(kind="other", text=json_text(block))


def _parts(blocks: list[Any]) -> list[Part]:
    """Every block but the tool uses and results (given apart) and cache points (no content), when one is more than
    text."""
    return beyond_text(
        [
            _part(block)
            for block in blocks
            if isinstance(block, dict) and not any(key in block for key in _APART) and "cachePoint" not in block
        ]
    )


def _tool_call(use: dict[str, Any]) -> ToolCall:
    arguments, error = read_arguments(use.get("input"))
    return ToolCall(
        id=as_str(use.get("toolUseId")), name=as_str(use.get("name")), arguments=arguments, arguments_error=error
    )


def tool_calls(blocks: list[Any]) -> list[ToolCall]:
    return [
        _tool_call(block["toolUse"])
        for block in blocks
        if isinstance(block, dict) and isinstance(block.get("toolUse"), dict)
    ]


def _result_text(content: Any) -> str:
    """A tool result's content: its text blocks, and its JSON blocks as JSON text."""
    texts = []
    for block in as_list(content):
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif "json" in block:
            texts.append(json_text(block["json"]))
    return "\n".join(texts)


def conversation(body: dict[str, Any]) -> tuple[list[Message], list[ToolDefinition]]:
    messages: list[Message] = []
    system = blocks_text(as_list(body.get("system")))
    if system:
        messages.append(Message(role="system", text=system, index=-1))
    names: dict[str, str] = {}
    for index, raw in enumerate(as_list(body.get("messages"))):
        if not isinstance(raw, dict):
            continue
        blocks = as_list(raw.get("content"))
        if raw.get("role") == "assistant":
            calls = tool_calls(blocks)
            names.update((call.id, call.name) for call in calls)
            messages.append(
                Message(role="assistant", text=blocks_text(blocks), tool_calls=calls, index=index, parts=_parts(blocks))
            )
            continue
        # A user turn holds text and tool results in any order: one message per result, the text between them kept.
        pending: list[Any] = []
        for block in blocks:
            result = as_dict(block).get("toolResult")
            if not isinstance(result, dict):
                pending.append(block)
                continue
            if pending:
                messages.append(Message(role="user", text=blocks_text(pending), index=index, parts=_parts(pending)))
                pending = []
            call_id = as_str(result.get("toolUseId"))
            text = _result_text(result.get("content"))
            found = ToolResult(
                tool_call_id=call_id, name=names.get(call_id), content=text, is_error=result.get("status") == "error"
            )
            messages.append(Message(role="tool", text=text, tool_result=found, index=index))
        if pending or not blocks:
            messages.append(Message(role="user", text=blocks_text(pending), index=index, parts=_parts(pending)))
    tools = []
    for tool in as_list(as_dict(body.get("toolConfig")).get("tools")):
        spec = as_dict(as_dict(tool).get("toolSpec"))
        if isinstance(spec.get("name"), str):
            schema = as_dict(spec.get("inputSchema")).get("json")
            tools.append(
                ToolDefinition(
                    name=spec["name"],
                    description=optional_str(spec.get("description")),
                    parameters=schema if isinstance(schema, dict) else None,
                )
            )
    return messages, tools


def answer(blocks: list[Any], found: Usage, finish_reason: str | None) -> CompletionView:
    return CompletionView(
        text=blocks_text(blocks),
        tool_calls=tool_calls(blocks),
        usage=found,
        finish_reason=finish_reason,
        parts=_parts(blocks),
    )


def completion_view(body: Any) -> CompletionView:
    """A Converse answer; Bedrock's error body (``{"message": …}``) says only its message."""
    body = as_dict(body)
    output = body.get("output")
    if not isinstance(output, dict):
        message = body.get("message") or body.get("Message")
        return CompletionView(error=message) if isinstance(message, str) and message else CompletionView()
    blocks = as_list(as_dict(output.get("message")).get("content"))
    return answer(blocks, usage(body.get("usage")), optional_str(body.get("stopReason")))


def stream_view(stream: bytes) -> CompletionView:
    blocks: dict[int, dict[str, Any]] = {}
    inputs: dict[int, list[str]] = {}
    counts: dict[str, Any] = {}
    stop_reason: str | None = None
    error: str | None = None
    for headers, payload in read_messages(stream):
        if headers.get(":message-type") == "exception":
            error = as_str(json_payload(payload).get("message")) or as_str(headers.get(":exception-type")) or "error"
            continue
        kind = headers.get(":event-type")
        event = json_payload(payload)
        index = as_int(event.get("contentBlockIndex"))
        if kind == "contentBlockStart" and index is not None:
            use = as_dict(as_dict(event.get("start")).get("toolUse"))
            blocks[index] = {"toolUse": {**use, "input": ""}} if use else {}
        elif kind == "contentBlockDelta" and index is not None:
            delta = as_dict(event.get("delta"))
            block = blocks.setdefault(index, {})
            if isinstance(delta.get("text"), str):
                block["text"] = as_str(block.get("text")) + delta["text"]
            elif isinstance(delta.get("toolUse"), dict):
                # A tool input without its start is still a call: judged (under no name) rather than missed.
                block.setdefault("toolUse", {"toolUseId": "", "name": ""})
                inputs.setdefault(index, []).append(as_str(delta["toolUse"].get("input")))
            elif isinstance(delta.get("reasoningContent"), dict):
                reasoning = block.setdefault("reasoningContent", {"reasoningText": {"text": ""}})["reasoningText"]
                reasoning["text"] = as_str(reasoning.get("text")) + as_str(delta["reasoningContent"].get("text"))
        elif kind == "messageStop":
            stop_reason = optional_str(event.get("stopReason")) or stop_reason
        elif kind == "metadata":
            counts.update(as_dict(event.get("usage")))
    for index, pieces in inputs.items():
        blocks[index]["toolUse"]["input"] = "".join(pieces)  # read (strictly) with the rest of the call
    ordered = [block for _, block in sorted(blocks.items()) if block]
    view = answer(ordered, usage(counts), stop_reason or ("error" if error is not None else None))
    view.error = error
    return view


def replace_tool_results(body: Any, replacements: Mapping[str, str]) -> None:
    for message in as_list(as_dict(body).get("messages")):
        if not isinstance(message, dict) or message.get("role") == "assistant":
            continue
        for block in as_list(message.get("content")):
            result = as_dict(block).get("toolResult")
            if isinstance(result, dict):
                replacement = replacements.get(as_str(result.get("toolUseId")))
                if replacement is not None:
                    result["content"] = [{"text": replacement}]


def refusal_body(body: Any, text: str) -> bytes:
    if not isinstance(body, dict):
        return orjson.dumps(body)
    message = {"role": "assistant", "content": [{"text": text}]}
    return orjson.dumps({**body, "output": {"message": message}, "stopReason": "end_turn"})


class HeldConverseStream(HeldStream):
    """Converse events, held from the first one that carries a tool use (its ``contentBlockStart``, or a tool input
    delta without one). The refusal is a text block at the next index the client has not seen, then the end of the
    message and its metadata (the held usage)."""

    def __init__(self) -> None:
        super().__init__()
        self._next_index = 0

    def split(self, data: bytes) -> tuple[list[bytes], bytes]:
        return split_messages(data)

    def passed(self, event: bytes) -> None:
        for _, payload in iter_messages(event):
            index = as_int(json_payload(payload).get("contentBlockIndex"))
            if index is not None:
                self._next_index = max(self._next_index, index + 1)

    def starts_hold(self, event: bytes) -> bool:
        if b"contentBlockStart" not in event and b"contentBlockDelta" not in event:
            return False  # the event type is a plain header string: no escape can hide it
        for headers, payload in iter_messages(event):
            parsed = json_payload(payload)
            if headers.get(":event-type") == "contentBlockStart" and "toolUse" in as_dict(parsed.get("start")):
                return True
            if headers.get(":event-type") == "contentBlockDelta" and "toolUse" in as_dict(parsed.get("delta")):
                return True
        return False

    def refusal_events(self, held: list[bytes], text: str) -> bytes:
        metadata: dict[str, Any] | None = None
        for raw in held:
            for headers, payload in iter_messages(raw):
                if headers.get(":event-type") == "metadata":
                    metadata = json_payload(payload)
        if metadata is None:  # a stream cut before its metadata: no usage is known
            metadata = {"usage": {"inputTokens": 0, "outputTokens": 0, "totalTokens": 0}, "metrics": {"latencyMs": 0}}
        index = self._next_index
        return b"".join(
            [
                encode_event("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": text}}),
                encode_event("contentBlockStop", {"contentBlockIndex": index}),
                encode_event("messageStop", {"stopReason": "end_turn"}),
                encode_event("metadata", metadata),
            ]
        )
