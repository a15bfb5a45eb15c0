"""Anthropic's Messages API (``/v1/messages``): content blocks, ``tool_use`` / ``tool_result`` blocks, a separate
``system``, and named SSE events (message_start, content_block_start/delta/stop, ping, message_delta, message_stop,
error)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from providers.base import ProviderAdapter, RequestMeta
from providers.common import (
    NotJSON,
    as_dict,
    as_int,
    as_list,
    as_str,
    beyond_text,
    error_message,
    json_text,
    loads_lenient,
    optional_str,
    parts_text,
    read_arguments,
    usage_with_cache_apart,
)
from providers.held_stream import HeldStream
from providers.sse import encode_event, first_json_event, iter_events, json_events
from schemas.view import CompletionView, ConversationView, Message, Part, ToolCall, ToolDefinition, ToolResult, Usage

WIRE_FORMAT = "Anthropic messages"
_TEXT = frozenset({"text"})
_SHOWN_APART = frozenset({"tool_use", "tool_result"})
"""Blocks the view gives as tool calls and tool results, not as parts."""
_TEXT_OR_APART = _TEXT | _SHOWN_APART
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def usage(raw: Any) -> Usage:
    """Anthropic counts cache reads and writes apart from ``input_tokens``; the common view's input is their sum."""
    return usage_with_cache_apart(
        as_dict(raw), "input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"
    )


def _tool_call(block: dict[str, Any]) -> ToolCall:
    arguments, error = read_arguments(block.get("input"))
    return ToolCall(
        id=as_str(block.get("id")), name=as_str(block.get("name")), arguments=arguments, arguments_error=error
    )


def _tool_calls(blocks: list[Any]) -> list[ToolCall]:
    """Calls of the client's tools (``server_tool_use`` blocks run at Anthropic and are not the client's to allow)."""
    return [_tool_call(block) for block in blocks if isinstance(block, dict) and block.get("type") == "tool_use"]


_SERVER_CALLS = {"server_tool_use", "mcp_tool_use"}


def _server_names(blocks: list[Any]) -> dict[str, str]:
    """Ids of the tool uses Anthropic ran itself, with their tool's name (every MCP tool counts as ``mcp``)."""
    return {
        as_str(block.get("id")): ("mcp" if block.get("type") == "mcp_tool_use" else as_str(block.get("name")))
        for block in blocks
        if isinstance(block, dict) and block.get("type") in _SERVER_CALLS
    }


def _is_server_result(block: Any) -> bool:
    """``web_search_tool_result``, ``web_fetch_tool_result``, ``mcp_tool_result``, ``code_execution_tool_result``…:
    what a tool Anthropic ran brought into the context, inside the assistant's own content."""
    kind = block.get("type") if isinstance(block, dict) else None
    return isinstance(kind, str) and kind.endswith("_tool_result") and kind != "tool_result"


def _server_results(blocks: list[Any], names: dict[str, str]) -> list[ToolResult]:
    """Known only by the tool use they answer: a result whose use is not in the conversation has no tool."""
    return [
        ToolResult(
            tool_call_id=as_str(block.get("tool_use_id")),
            name=names.get(as_str(block.get("tool_use_id"))),
            content=json_text(block.get("content")),
        )
        for block in blocks
        if _is_server_result(block)
    ]


def _part(block: dict[str, Any]) -> Part:
    kind = block.get("type")
    if kind == "text":
        return Part(kind="text", text=as_str(block.get("text")))
    if kind in ("thinking", "redacted_thinking"):
        return Part(kind="reasoning", text=as_str(block.get("thinking")))
    if kind in ("image", "document"):
        return Part(kind="media", media=kind)
    return Part(kind="other", text=json_text(block))


def _parts(blocks: list[Any]) -> list[Part]:
    """``Message.parts`` of a list of blocks, without the tool uses and results the view gives apart; none when the
    blocks are text only (checked first: this runs on every request)."""
    for block in blocks:  # a loop, not all(): cheaper on the long histories agents send
        if not isinstance(block, dict) or block.get("type") not in _TEXT_OR_APART:
            break
    else:
        return []
    return beyond_text(
        [
            _part(block)
            for block in blocks
            if isinstance(block, dict) and block.get("type") not in _SHOWN_APART and not _is_server_result(block)
        ]
    )


def _conversation(body: dict[str, Any]) -> tuple[list[Message], list[ToolDefinition]]:
    messages: list[Message] = []
    system = parts_text(body.get("system"), _TEXT)
    if system:
        messages.append(Message(role="system", text=system, index=-1))
    names: dict[str, str] = {}
    for index, raw in enumerate(as_list(body.get("messages"))):
        if not isinstance(raw, dict):
            continue
        content = raw.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else as_list(content)
        if raw.get("role") == "assistant":
            calls = _tool_calls(blocks)
            names.update((call.id, call.name) for call in calls)
            names.update(_server_names(blocks))
            messages.append(
                Message(
                    role="assistant",
                    text=parts_text(blocks, _TEXT),
                    tool_calls=calls,
                    index=index,
                    parts=_parts(blocks),
                )
            )
            for result in _server_results(blocks, names):
                messages.append(Message(role="tool", text=result.content, tool_result=result, index=index))
            continue
        # A user turn holds text and tool results in any order: one message per result, text between them kept.
        pending: list[dict[str, Any]] = []
        for block in blocks:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                if pending:
                    messages.append(
                        Message(role="user", text=parts_text(pending, _TEXT), index=index, parts=_parts(pending))
                    )
                    pending = []
                call_id = as_str(block.get("tool_use_id"))
                content = block.get("content")
                text = parts_text(content, _TEXT)
                result = ToolResult(
                    tool_call_id=call_id, name=names.get(call_id), content=text, is_error=block.get("is_error") is True
                )
                parts = _parts(content) if isinstance(content, list) else []
                messages.append(Message(role="tool", text=text, tool_result=result, index=index, parts=parts))
            elif isinstance(block, dict):
                pending.append(block)
        if pending or not blocks:
            messages.append(Message(role="user", text=parts_text(pending, _TEXT), index=index, parts=_parts(pending)))
    tools = [
        ToolDefinition(
            name=as_str(tool.get("name")),
            description=optional_str(tool.get("description")),
            parameters=tool.get("input_schema") if isinstance(tool.get("input_schema"), dict) else None,
        )
        for tool in as_list(body.get("tools"))
        if isinstance(tool, dict) and isinstance(tool.get("name"), str)
    ]
    return messages, tools


class AnthropicAdapter(ProviderAdapter):
    name = "anthropic"
    default_base_url = "https://api.anthropic.com"
    top_level_paths = frozenset({"v1"})

    def request_meta(self, route: str, body: Any, query: str) -> RequestMeta:
        if not isinstance(body, dict):
            return RequestMeta(model="", stream=False)
        model = body.get("model")
        return RequestMeta(model=model if isinstance(model, str) else "", stream=body.get("stream") is True)

    def error_body(self, status: int, message: str, kind: str) -> bytes:
        kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else kind)
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})

    def stream_error_event(
        self, message: str, *, route: str = "", content_type: str = "text/event-stream", started: bool = True
    ) -> bytes:
        return encode_event(self.error_body(502, message, "api_error"), event="error")

    def request_view(self, route: str, body: Any) -> ConversationView:
        meta = self.request_meta(route, body, "")
        messages, tools = _conversation(body) if isinstance(body, dict) else ([], [])
        return ConversationView(
            provider=self.name,
            wire_format=WIRE_FORMAT,
            model=meta.model,
            messages=messages,
            tools=tools,
            stream=meta.stream,
        )

    def completion_view(self, route: str, body: Any) -> CompletionView:
        # Only a message is an answer: token counts and model lists are recorded, not read.
        if isinstance(body, dict) and body.get("type") == "error":
            return CompletionView(error=error_message(body) or "error")
        if not isinstance(body, dict) or body.get("type") != "message":
            return CompletionView()
        return self._answer(
            as_list(body.get("content")), usage(body.get("usage")), optional_str(body.get("stop_reason"))
        )

    @staticmethod
    def _answer(blocks: list[Any], found: Usage, finish_reason: str | None) -> CompletionView:
        return CompletionView(
            text=parts_text(blocks, _TEXT),
            tool_calls=_tool_calls(blocks),
            usage=found,
            finish_reason=finish_reason,
            tool_results=_server_results(blocks, _server_names(blocks)),
            parts=_parts(blocks),
        )

    def stream_view(self, route: str, stream: bytes) -> CompletionView:
        blocks: dict[int, dict[str, Any]] = {}
        json_pieces: dict[int, list[str]] = {}
        counts: dict[str, Any] = {}
        stop_reason: str | None = None
        error: str | None = None
        for name, data in iter_events(stream):
            try:
                event = loads_lenient(data)
            except NotJSON:
                continue
            if not isinstance(event, dict):
                continue
            kind = event.get("type") or name
            index = event.get("index")
            if kind == "message_start":
                counts.update(as_dict(as_dict(event.get("message")).get("usage")))
            elif kind == "content_block_start" and isinstance(index, int):
                blocks[index] = dict(as_dict(event.get("content_block")))
            elif kind == "content_block_delta" and isinstance(index, int) and index in blocks:
                delta = as_dict(event.get("delta"))
                if delta.get("type") == "text_delta":
                    blocks[index]["text"] = as_str(blocks[index].get("text")) + as_str(delta.get("text"))
                elif delta.get("type") == "input_json_delta":
                    json_pieces.setdefault(index, []).append(as_str(delta.get("partial_json")))
                elif delta.get("type") == "thinking_delta":
                    blocks[index]["thinking"] = as_str(blocks[index].get("thinking")) + as_str(delta.get("thinking"))
            elif kind == "message_delta":
                stop_reason = optional_str(as_dict(event.get("delta")).get("stop_reason")) or stop_reason
                # message_delta's usage is cumulative; fields it leaves out (or null) keep message_start's value.
                counts.update({k: v for k, v in as_dict(event.get("usage")).items() if v is not None})
            elif kind == "error":
                error = error_message(event) or "error"
        for index, pieces in json_pieces.items():
            blocks[index]["input"] = "".join(pieces)  # read (strictly) with the rest of the call
        ordered = [block for _, block in sorted(blocks.items())]
        view = self._answer(ordered, usage(counts), stop_reason or ("error" if error is not None else None))
        view.error = error
        return view

    # -- inline policy support --------------------------------------------------------------------------------------

    def replace_tool_results(self, route: str, body: Any, replacements: Mapping[str, str]) -> None:
        if not isinstance(body, dict) or not replacements:
            return
        for message in as_list(body.get("messages")):
            if not isinstance(message, dict) or message.get("role") == "assistant":
                continue
            for block in as_list(message.get("content")):
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    replacement = replacements.get(as_str(block.get("tool_use_id")))
                    if replacement is not None:
                        block["content"] = replacement

    def refusal_body(self, route: str, body: Any, text: str) -> bytes:
        if not isinstance(body, dict):
            return orjson.dumps(body)
        return orjson.dumps(
            {**body, "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None}
        )

    def held_stream(self, route: str, content_type: str) -> HeldStream:
        return HeldMessagesStream()


def _sse(kind: str, **fields: Any) -> bytes:
    return encode_event(orjson.dumps({"type": kind, **fields}), event=kind)


class HeldMessagesStream(HeldStream):
    """Messages events: held from the ``content_block_start`` of the first ``tool_use`` block. The refusal opens a text
    block at the next index the client has not seen, then ends the message normally with the held usage."""

    def __init__(self) -> None:
        super().__init__()
        self._next_index = 0
        self._start_usage: dict[str, Any] = {}

    def passed(self, event: bytes) -> None:
        if b"content_block_start" not in event and b"message_start" not in event:
            return
        parsed = first_json_event(event)
        index = parsed.get("index")
        if parsed.get("type") == "content_block_start" and isinstance(index, int):
            self._next_index = max(self._next_index, index + 1)
        elif parsed.get("type") == "message_start":
            self._start_usage = as_dict(as_dict(parsed.get("message")).get("usage"))

    def starts_hold(self, event: bytes) -> bool:
        if (b"content_block_start" not in event or b"tool_use" not in event) and b"\\u" not in event:
            return False  # the common case, decided without parsing (no escape could spell the markers otherwise)
        return any(
            parsed.get("type") == "content_block_start"
            and as_dict(parsed.get("content_block")).get("type") == "tool_use"
            for parsed in json_events(event)
        )

    def refusal_events(self, held: list[bytes], text: str) -> bytes:
        found: dict[str, Any] | None = None
        for raw in held:
            parsed = first_json_event(raw)
            if parsed.get("type") == "message_delta" and isinstance(parsed.get("usage"), dict):
                found = parsed["usage"]
        # A stream cut before its message_delta: message_start's counts are all there is.
        usage = found if found is not None else {"output_tokens": as_int(self._start_usage.get("output_tokens")) or 0}
        index = self._next_index
        return b"".join(
            [
                _sse("content_block_start", index=index, content_block={"type": "text", "text": ""}),
                _sse("content_block_delta", index=index, delta={"type": "text_delta", "text": text}),
                _sse("content_block_stop", index=index),
                _sse("message_delta", delta={"stop_reason": "end_turn", "stop_sequence": None}, usage=usage),
                _sse("message_stop"),
            ]
        )
