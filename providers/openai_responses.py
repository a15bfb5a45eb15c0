"""OpenAI's Responses API (``/responses``): typed input items, typed output items and typed stream events."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import orjson

from providers.common import (
    as_dict,
    as_int,
    as_list,
    as_str,
    beyond_text,
    error_message,
    json_text,
    optional_str,
    parts_text,
    read_arguments,
)
from providers.held_stream import HeldStream
from providers.openai_chat import content_part, content_parts
from providers.sse import encode_event, first_json_event, json_events
from schemas.view import CompletionView, ConversationView, Message, Part, ToolCall, ToolDefinition, ToolResult, Usage

_CALLS = {"function_call": "arguments", "custom_tool_call": "input"}
"""Output item types that are calls of the client's tools, with the field holding their arguments."""
_RESULTS = {"function_call_output", "custom_tool_call_output"}
_SERVER_RESULTS = {
    "web_search_call": "web_search",
    "file_search_call": "file_search",
    "mcp_call": "mcp",
    "code_interpreter_call": "code_interpreter",
    "image_generation_call": "image_generation",
}
"""Items of tools the provider runs itself, which bring outside data into the context, with the tool's name (an MCP
call's own ``name`` is the remote tool's and stays the server's word, so every MCP result counts as ``mcp``)."""
_TOOL_TYPES = {"function", "custom"}
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
_TERMINAL_EVENTS = {"response.completed", "response.incomplete", "response.failed"}
WIRE_FORMAT = "OpenAI Responses"
_ANSWER_TEXTS = frozenset({"output_text", "refusal"})
"""The content parts of an output message that are the model's words: its text, and a refusal given instead."""
_DELTAS = {
    "response.output_text.delta": "output_text",
    "response.refusal.delta": "refusal",
    "response.function_call_arguments.delta": "arguments",
    "response.custom_tool_call_input.delta": "arguments",
}
"""Stream events that add to an output item, and what they add to (read when a stream ends before its terminal
event, which would carry the whole response)."""
_PIECES = ("output_text", "refusal", "arguments")


def _reasoning(item: dict[str, Any]) -> Part:
    """A reasoning item: its summary (the reasoning itself is usually encrypted), else its own text."""
    summary = "\n".join(as_str(as_dict(piece).get("text")) for piece in as_list(item.get("summary")))
    return Part(kind="reasoning", text=summary or parts_text(item.get("content")))


def usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    details = as_dict(raw.get("input_tokens_details"))
    return Usage(
        input_tokens=as_int(raw.get("input_tokens")),
        output_tokens=as_int(raw.get("output_tokens")),
        cached_tokens=as_int(details.get("cached_tokens")),
        reasoning_tokens=as_int(as_dict(raw.get("output_tokens_details")).get("reasoning_tokens")),
    )


def _call(item: dict[str, Any]) -> ToolCall:
    arguments, error = read_arguments(item.get(_CALLS[as_str(item.get("type"))]))
    return ToolCall(
        id=as_str(item.get("call_id")) or as_str(item.get("id")),
        name=as_str(item.get("name")),
        arguments=arguments,
        arguments_error=error,
    )


def _server_result(item: dict[str, Any]) -> ToolResult:
    """What a provider-run tool brought into the context: the whole item, as JSON text."""
    kind = as_str(item.get("type"))
    return ToolResult(tool_call_id=as_str(item.get("id")), name=_SERVER_RESULTS[kind], content=json_text(item))


def history_refs(body: dict[str, Any]) -> list[str]:
    """The provider-held history a request continues: ``previous_response_id``, ``conversation`` (an id or
    ``{"id": …}``)."""
    refs = []
    previous = body.get("previous_response_id")
    if isinstance(previous, str) and previous:
        refs.append(f"response:{previous}")
    conversation = body.get("conversation")
    conversation_id = conversation if isinstance(conversation, str) else as_dict(conversation).get("id")
    if isinstance(conversation_id, str) and conversation_id:
        refs.append(f"conversation:{conversation_id}")
    return refs


def request_view(provider: str, model: str, stream: bool, body: dict[str, Any]) -> ConversationView:
    messages: list[Message] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append(Message(role="system", text=instructions, index=-1))
    raw_input = body.get("input")
    items = [{"role": "user", "content": raw_input}] if isinstance(raw_input, str) else as_list(raw_input)
    names: dict[str, str] = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind in _CALLS:
            call = _call(item)
            names[call.id] = call.name
            messages.append(Message(role="assistant", tool_calls=[call], index=index))
        elif kind in _RESULTS:
            call_id = as_str(item.get("call_id"))
            output = item.get("output")
            content = parts_text(output) if isinstance(output, list) else json_text(output)
            result = ToolResult(tool_call_id=call_id, name=names.get(call_id), content=content)
            messages.append(Message(role="tool", text=content, tool_result=result, index=index))
        elif kind in _SERVER_RESULTS:
            result = _server_result(item)
            messages.append(Message(role="tool", text=result.content, tool_result=result, index=index))
        elif kind in (None, "message") and item.get("role") in _ROLES:
            role = _ROLES[item["role"]]
            content = item.get("content")
            messages.append(Message(role=role, text=parts_text(content), index=index, parts=content_parts(content)))  # type: ignore[arg-type]
        elif kind == "reasoning":
            messages.append(Message(role="assistant", index=index, parts=[_reasoning(item)]))
        else:  # an item of a kind not read here (an item reference, a computer call…): shown as it is
            role = _ROLES.get(as_str(item.get("role")), "assistant")
            messages.append(Message(role=role, index=index, parts=[Part(kind="other", text=json_text(item))]))  # type: ignore[arg-type]
    tools = [
        ToolDefinition(
            name=as_str(tool.get("name")),
            description=optional_str(tool.get("description")),
            parameters=tool.get("parameters") if isinstance(tool.get("parameters"), dict) else None,
        )
        for tool in as_list(body.get("tools"))
        if isinstance(tool, dict) and tool.get("type") in _TOOL_TYPES
    ]
    builtin_tools = [
        as_str(tool.get("type"))
        for tool in as_list(body.get("tools"))
        if isinstance(tool, dict) and tool.get("type") not in _TOOL_TYPES and isinstance(tool.get("type"), str)
    ]
    return ConversationView(
        provider=provider,
        wire_format=WIRE_FORMAT,
        model=model,
        messages=messages,
        tools=tools,
        builtin_tools=builtin_tools,
        stream=stream,
        provider_history=history_refs(body),
    )


def completion_view(body: dict[str, Any]) -> CompletionView:
    texts: list[str] = []
    calls: list[ToolCall] = []
    results: list[ToolResult] = []
    pieces: list[Part] = []
    for item in as_list(body.get("output")):
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "message":
            texts.append(parts_text(item.get("content"), _ANSWER_TEXTS))
            pieces += [content_part(piece) for piece in as_list(item.get("content"))]
        elif kind == "reasoning":
            pieces.append(_reasoning(item))
        elif kind in _CALLS:
            calls.append(_call(item))
        elif kind in _SERVER_RESULTS:
            results.append(_server_result(item))
    status = optional_str(body.get("status"))
    reason = optional_str(as_dict(body.get("incomplete_details")).get("reason"))
    refs = [f"response:{body['id']}"] if isinstance(body.get("id"), str) and body["id"] else []
    refs += [ref for ref in history_refs(body) if ref.startswith("conversation:")]
    return CompletionView(
        text="".join(texts),
        tool_calls=calls,
        usage=usage(body.get("usage")),
        finish_reason=reason or status,
        tool_results=results,
        provider_refs=refs,
        parts=beyond_text(pieces),
        error=error_message(body),
        model=optional_str(body.get("model")) or None,
    )


def stream_view(stream: bytes) -> CompletionView:
    """The terminal event carries the whole response; a stream cut before it is assembled from its deltas."""
    items: dict[int, dict[str, Any]] = {}
    partial: dict[tuple[int, str], list[str]] = {}
    last_response: dict[str, Any] = {}
    error: str | None = None
    for event in json_events(stream):
        kind = event.get("type")
        if kind in _TERMINAL_EVENTS and isinstance(event.get("response"), dict):
            return completion_view(event["response"])
        if isinstance(event.get("response"), dict):
            last_response = event["response"]
        index = event.get("output_index")
        if kind == "error":
            error = as_str(event.get("message")) or error_message(event) or json_text(event)
        elif not isinstance(index, int):
            continue
        elif kind in ("response.output_item.added", "response.output_item.done"):
            items[index] = as_dict(event.get("item"))
            if kind == "response.output_item.done":
                for part in _PIECES:
                    partial.pop((index, part), None)
        elif kind in _DELTAS:
            partial.setdefault((index, _DELTAS[kind]), []).append(as_str(event.get("delta")))
    output = []
    for index, item in sorted(items.items()):
        text, refusal, arguments = ("".join(partial.get((index, part), [])) for part in _PIECES)
        if item.get("type") == "message" and (text or refusal):
            content = [{"type": "output_text", "text": text}] if text else []
            content += [{"type": "refusal", "refusal": refusal}] if refusal else []
            item = {**item, "content": content}
        elif item.get("type") in _CALLS and arguments:
            item = {**item, _CALLS[item["type"]]: arguments}
        output.append(item)
    view = completion_view({**last_response, "output": output})
    if error is not None:
        view.error = view.error or error
        if view.finish_reason in (None, "in_progress", "queued"):
            view.finish_reason = "error"
    return view


def stream_error_event(message: str) -> bytes:
    """The Responses API's own ``error`` event (its sequence number is unknown here, so 0)."""
    payload = {"type": "error", "code": "upstream_error", "message": message, "param": None, "sequence_number": 0}
    return encode_event(orjson.dumps(payload), event="error")


# -- inline policy support ------------------------------------------------------------------------------------------

_CALL_EVENTS = frozenset(
    {
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.done",
    }
)


def replace_tool_results(body: dict[str, Any], replacements: Mapping[str, str]) -> None:
    for item in as_list(body.get("input")):
        if isinstance(item, dict) and item.get("type") in _RESULTS:
            replacement = replacements.get(as_str(item.get("call_id")))
            if replacement is not None:
                item["output"] = replacement


def _message_item(item_id: str, text: str, *, status: str = "completed") -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": []}] if status == "completed" else []
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}


def _refusal_id(response: dict[str, Any], taken: Collection[str] = ()) -> str:
    """An id for the refusal's message item, unlike any item id the client has seen."""
    base = "msg_refusal_" + (as_str(response.get("id")).removeprefix("resp_") or "0")
    candidate, n = base, 1
    while candidate in taken:
        candidate, n = f"{base}_{n}", n + 1
    return candidate


def _completed(response: dict[str, Any], output: list[dict[str, Any]]) -> dict[str, Any]:
    return {**response, "status": "completed", "incomplete_details": None, "error": None, "output": output}


def refusal_body(body: Any, text: str) -> bytes:
    """The response with its output replaced by one assistant message saying ``text``."""
    if not isinstance(body, dict):
        return orjson.dumps(body)
    return orjson.dumps(_completed(body, [_message_item(_refusal_id(body), text)]))


def _has_call(item: Any) -> bool:
    return isinstance(item, dict) and item.get("type") in _CALLS


def _about_a_call(event: dict[str, Any]) -> bool:
    if event.get("type") in _CALL_EVENTS or _has_call(event.get("item")):
        return True
    return any(_has_call(item) for item in as_list(as_dict(event.get("response")).get("output")))


class HeldResponsesStream(HeldStream):
    """Responses API events: held from the first event about a call of a client tool (its output item, its argument
    deltas, or a terminal response that holds one). The refusal appends a message item after every item the client
    has seen and completes the response with it, numbering its events after the last one sent."""

    def __init__(self) -> None:
        super().__init__()
        self._items: dict[int, dict[str, Any]] = {}
        self._response: dict[str, Any] = {}
        self._sequence = -1

    def passed(self, event: bytes) -> None:
        parsed = first_json_event(event)
        if isinstance(parsed.get("sequence_number"), int):
            self._sequence = max(self._sequence, parsed["sequence_number"])
        if isinstance(parsed.get("response"), dict):
            self._response = parsed["response"]
        index, item = parsed.get("output_index"), parsed.get("item")
        if not isinstance(index, int) or not isinstance(item, dict):
            return
        # An item's done event supersedes its added one (final status and content).
        if parsed.get("type") == "response.output_item.done" or index not in self._items:
            self._items[index] = item

    def starts_hold(self, event: bytes) -> bool:
        if b"function_call" not in event and b"custom_tool_call" not in event and b"\\u" not in event:
            return False  # the common case, decided without parsing (no escape could spell the markers otherwise)
        return any(_about_a_call(parsed) for parsed in json_events(event))

    def refusal_events(self, held: list[bytes], text: str) -> bytes:
        response = self._response
        for raw in held:
            parsed = first_json_event(raw)
            if parsed.get("type") in _TERMINAL_EVENTS and isinstance(parsed.get("response"), dict):
                response = parsed["response"]  # the final usage and timestamps
        index = max(self._items, default=-1) + 1
        taken = {as_str(item.get("id")) for item in self._items.values()}
        item_id = _refusal_id(response, taken)
        located = {"item_id": item_id, "output_index": index, "content_index": 0}
        empty_part = {"type": "output_text", "text": "", "annotations": []}
        part = {**empty_part, "text": text}
        item = _message_item(item_id, text)
        output = [self._items[i] for i in sorted(self._items)] + [item]
        events = [
            (
                "response.output_item.added",
                {"output_index": index, "item": _message_item(item_id, text, status="in_progress")},
            ),
            ("response.content_part.added", {**located, "part": empty_part}),
            ("response.output_text.delta", {**located, "delta": text, "logprobs": []}),
            ("response.output_text.done", {**located, "text": text, "logprobs": []}),
            ("response.content_part.done", {**located, "part": part}),
            ("response.output_item.done", {"output_index": index, "item": item}),
            ("response.completed", {"response": _completed(response, output)}),
        ]
        out = []
        for number, (kind, fields) in enumerate(events, start=self._sequence + 1):
            payload = {"type": kind, "sequence_number": number, **fields}
            out.append(encode_event(orjson.dumps(payload), event=kind))
        return b"".join(out)
