"""OpenAI's wire format: chat completions (and the OpenAI-compatible providers that copy it)."""

from __future__ import annotations

from typing import Any

import orjson

from providers.base import ProviderAdapter, RequestMeta
from providers.sse import iter_events
from schemas.view import CompletionView, ConversationView, Message, ToolCall, ToolDefinition, ToolResult, Usage


def _parse_arguments(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw
    return raw


def _text(content: Any) -> str:
    """Message content is a string or a list of parts; keep the text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part.get("text", "") for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def chat_usage(usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    details = usage.get("prompt_tokens_details") or {}
    return Usage(
        input_tokens=usage.get("prompt_tokens"),
        output_tokens=usage.get("completion_tokens"),
        cached_tokens=details.get("cached_tokens") if isinstance(details, dict) else None,
    )


class OpenAIAdapter(ProviderAdapter):
    name = "openai"

    def request_meta(self, route: str, body: Any, query: str) -> RequestMeta:
        if not isinstance(body, dict):
            return RequestMeta(model="", stream=False)
        model = body.get("model")
        return RequestMeta(model=model if isinstance(model, str) else "", stream=body.get("stream") is True)

    def error_body(self, status: int, message: str, kind: str) -> bytes:
        return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": kind}})

    def stream_error_event(self, message: str) -> bytes:
        payload = orjson.dumps({"error": {"message": message, "type": "upstream_error", "param": None, "code": None}})
        return b"data: " + payload + b"\n\n"

    def request_view(self, route: str, body: Any) -> ConversationView:
        body = body if isinstance(body, dict) else {}
        messages: list[Message] = []
        for index, raw in enumerate(body.get("messages") or []):
            if not isinstance(raw, dict):
                continue
            role = raw.get("role")
            if role in ("system", "developer"):
                messages.append(Message(role="system", text=_text(raw.get("content")), index=index))
            elif role == "user":
                messages.append(Message(role="user", text=_text(raw.get("content")), index=index))
            elif role == "assistant":
                calls = [
                    ToolCall(
                        id=str(call.get("id", "")),
                        name=str((call.get("function") or {}).get("name", "")),
                        arguments=_parse_arguments((call.get("function") or {}).get("arguments")),
                    )
                    for call in raw.get("tool_calls") or []
                    if isinstance(call, dict)
                ]
                messages.append(
                    Message(role="assistant", text=_text(raw.get("content")), tool_calls=calls, index=index)
                )
            elif role in ("tool", "function"):
                result = ToolResult(
                    tool_call_id=str(raw.get("tool_call_id", "")),
                    name=raw.get("name") if isinstance(raw.get("name"), str) else None,
                    content=_text(raw.get("content")),
                )
                messages.append(Message(role="tool", text=result.content, tool_result=result, index=index))
        tools = [
            ToolDefinition(
                name=str((tool.get("function") or {}).get("name", "")),
                description=(tool.get("function") or {}).get("description"),
                parameters=(tool.get("function") or {}).get("parameters"),
            )
            for tool in body.get("tools") or []
            if isinstance(tool, dict) and tool.get("type", "function") == "function"
        ]
        meta = self.request_meta(route, body, "")
        return ConversationView(
            provider=self.name, model=meta.model, messages=messages, tools=tools, stream=meta.stream
        )

    def completion_view(self, route: str, body: Any) -> CompletionView:
        if not isinstance(body, dict):
            return CompletionView()
        choices = body.get("choices") or []
        first = choices[0] if choices and isinstance(choices[0], dict) else {}
        message = first.get("message") or {}
        calls = [
            ToolCall(
                id=str(call.get("id", "")),
                name=str((call.get("function") or {}).get("name", "")),
                arguments=_parse_arguments((call.get("function") or {}).get("arguments")),
            )
            for call in message.get("tool_calls") or []
            if isinstance(call, dict)
        ]
        return CompletionView(
            text=_text(message.get("content")),
            tool_calls=calls,
            usage=chat_usage(body.get("usage")),
            finish_reason=first.get("finish_reason"),
        )

    def stream_view(self, route: str, stream: bytes) -> CompletionView:
        text: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        usage = Usage()
        finish_reason = None
        for _, data in iter_events(stream):
            if not data or data == "[DONE]":
                continue
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(chunk, dict):
                continue
            if chunk.get("usage"):
                usage = chat_usage(chunk["usage"])
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                if isinstance(delta.get("content"), str):
                    text.append(delta["content"])
                for call in delta.get("tool_calls") or []:
                    slot = calls.setdefault(call.get("index", 0), {"id": "", "name": "", "arguments": ""})
                    slot["id"] = call.get("id") or slot["id"]
                    function = call.get("function") or {}
                    slot["name"] = function.get("name") or slot["name"]
                    slot["arguments"] += function.get("arguments") or ""
                finish_reason = choice.get("finish_reason") or finish_reason
        return CompletionView(
            text="".join(text),
            tool_calls=[
                ToolCall(id=c["id"], name=c["name"], arguments=_parse_arguments(c["arguments"]))
                for _, c in sorted(calls.items())
            ],
            usage=usage,
            finish_reason=finish_reason,
        )
