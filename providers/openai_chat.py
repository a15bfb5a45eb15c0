"""OpenAI chat completions (``/chat/completions``), which the OpenAI-compatible providers copy."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from providers.common import (
    ViewCache,
    as_dict,
    as_int,
    as_list,
    as_str,
    beyond_text,
    cache_key,
    error_message,
    json_text,
    optional_str,
    parts_text,
    read_arguments,
    with_refusal,
)
from providers.held_stream import HeldStream
from providers.sse import encode_event, iter_events, json_events
from schemas.view import CompletionView, ConversationView, Message, Part, ToolCall, ToolDefinition, ToolResult, Usage

WIRE_FORMAT = "OpenAI chat completions"
_TEXTS = frozenset({"text", "input_text", "output_text"})
_MEDIA = {
    "image_url": "image",
    "input_image": "image",
    "input_audio": "audio",
    "audio": "audio",
    "file": "file",
    "input_file": "file",
}


def usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    details = as_dict(raw.get("prompt_tokens_details"))
    return Usage(
        input_tokens=as_int(raw.get("prompt_tokens")),
        output_tokens=as_int(raw.get("completion_tokens")),
        cached_tokens=as_int(details.get("cached_tokens")),
        reasoning_tokens=as_int(as_dict(raw.get("completion_tokens_details")).get("reasoning_tokens")),
    )


def content_part(item: Any) -> Part:
    """One piece of an OpenAI content list (chat completions' and the Responses API's share their kinds)."""
    if isinstance(item, str):
        return Part(kind="text", text=item)
    kind = as_dict(item).get("type")
    if kind in _TEXTS:
        return Part(kind="text", text=as_str(item.get("text")))
    if kind == "refusal":
        return Part(kind="refusal", text=as_str(item.get("refusal")))
    if kind in _MEDIA:
        return Part(kind="media", media=_MEDIA[kind])
    return Part(kind="other", text=json_text(item))


def content_parts(content: Any) -> list[Part]:
    """``Message.parts`` of a content: none for a string or text pieces only (checked first: this runs on every
    request)."""
    if not isinstance(content, list):
        return []
    for item in content:  # a loop, not all(): cheaper on the long histories agents send
        if not isinstance(item, dict) or item.get("type") not in _TEXTS:
            break
    else:
        return []
    return beyond_text([content_part(item) for item in content])


def _call(call_id: str, name: str, raw_arguments: Any) -> ToolCall:
    arguments, error = read_arguments(raw_arguments)
    return ToolCall(id=call_id, name=name, arguments=arguments, arguments_error=error)


def _tool_call(raw: dict[str, Any]) -> ToolCall:
    function = as_dict(raw.get("function"))
    return _call(as_str(raw.get("id")), as_str(function.get("name")), function.get("arguments"))


def legacy_call_id(position: int) -> str:
    """The id given to a legacy ``function_call`` (it has none of its own): its message's or choice's position."""
    return f"function_call#{position}"


def _calls(message: dict[str, Any], position: int) -> list[ToolCall]:
    """An assistant message's tool calls, the legacy ``function_call`` included."""
    calls = [_tool_call(call) for call in as_list(message.get("tool_calls")) if isinstance(call, dict)]
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        calls.append(_call(legacy_call_id(position), as_str(legacy.get("name")), legacy.get("arguments")))
    return calls


_MESSAGES = ViewCache()
_TOOLS = ViewCache(capacity=2_000)


def _message(index: int, raw: dict[str, Any], names: dict[str, str], legacy: str) -> Message | None:
    """One message in the view. A tool result is known only by the call it answers: its own ``name`` is the
    client's word, so the tool is the one the answered call named (``names``); a legacy ``function`` message answers
    the last legacy ``function_call`` (``legacy``, its id)."""
    role = raw.get("role")
    text = parts_text(raw.get("content"))
    parts = content_parts(raw.get("content"))
    if role in ("system", "developer"):
        return Message(role="system", text=text, index=index, parts=parts)
    if role == "user":
        return Message(role="user", text=text, index=index, parts=parts)
    if role == "assistant":
        # An earlier answer's refusal, sent back in the history, is read as the answer was.
        refusal = raw.get("refusal")
        text, parts = with_refusal(text, refusal), _answer_parts(raw.get("content"), refusal)
        return Message(role="assistant", text=text, tool_calls=_calls(raw, index), index=index, parts=parts)
    if role in ("tool", "function"):
        call_id = as_str(raw.get("tool_call_id")) if role == "tool" else legacy
        result = ToolResult(tool_call_id=call_id, name=names.get(call_id) if call_id else None, content=text)
        return Message(role="tool", text=text, tool_result=result, index=index, parts=parts)
    return None


def _tools(raw_tools: list[Any], raw_functions: list[Any]) -> list[ToolDefinition]:
    functions = [
        as_dict(tool.get("function"))
        for tool in raw_tools
        if isinstance(tool, dict) and tool.get("type", "function") == "function"
    ]
    functions += [function for function in raw_functions if isinstance(function, dict)]  # the legacy ``functions``
    return [
        ToolDefinition(
            name=as_str(function.get("name")),
            description=optional_str(function.get("description")),
            parameters=function.get("parameters") if isinstance(function.get("parameters"), dict) else None,
        )
        for function in functions
    ]


def request_view(provider: str, model: str, stream: bool, body: dict[str, Any]) -> ConversationView:
    messages: list[Message] = []
    names: dict[str, str] = {}
    legacy = ""  # the id of the last legacy function_call
    cached = _MESSAGES.get  # a long history makes this loop hot: names looked up once
    for index, raw in enumerate(as_list(body.get("messages"))):
        if not isinstance(raw, dict):
            continue
        # A tool result's view depends on the call it answers (its tool's name), so that is part of its key.
        role = raw.get("role")
        if role == "tool":
            key = cache_key(index, raw, names.get(str(raw.get("tool_call_id", ""))))
        elif role == "function":
            key = cache_key(index, raw, legacy, names.get(legacy))
        else:
            key = cache_key(index, raw, 0)
        message = cached(key)
        if message is None:
            message = _MESSAGES.put(key, _message(index, raw, names, legacy))
        if message is None:
            continue
        if message.tool_calls:
            names.update((call.id, call.name) for call in message.tool_calls)
            if isinstance(raw.get("function_call"), dict):
                legacy = legacy_call_id(index)
        elif role == "function":
            legacy = ""  # answered
        messages.append(message)
    raw_tools, raw_functions = as_list(body.get("tools")), as_list(body.get("functions"))
    tools_key = cache_key(raw_tools, raw_functions)
    tools = _TOOLS.get(tools_key)
    if tools is None:
        tools = _TOOLS.put(tools_key, _tools(raw_tools, raw_functions))
    return ConversationView(
        provider=provider,
        wire_format=WIRE_FORMAT,
        model=model,
        messages=messages,
        tools=list(tools),
        stream=stream,
    )


def completion_view(body: dict[str, Any]) -> CompletionView:
    """The first choice's text and finish reason; the tool calls of every choice (``n`` > 1), all to be judged."""
    choices = [as_dict(choice) for choice in as_list(body.get("choices"))]
    first = choices[0] if choices else {}
    calls: list[ToolCall] = []
    for position, choice in enumerate(choices):
        index = choice.get("index")
        calls += _calls(as_dict(choice.get("message")), index if isinstance(index, int) else position)
    message = as_dict(first.get("message"))
    # Legacy completions (``/completions``, still served by OpenAI-compatible servers) answer in the same envelope,
    # with the choice's ``text`` in place of a message.
    content = message.get("content") if message else first.get("text")
    return CompletionView(
        text=with_refusal(parts_text(content), message.get("refusal")),
        tool_calls=calls,
        usage=usage(body.get("usage")),
        finish_reason=optional_str(first.get("finish_reason")),
        parts=_answer_parts(content, message.get("refusal")),
        model=optional_str(body.get("model")) or None,
    )


def _answer_parts(content: Any, refusal: Any) -> list[Part]:
    """An answer's pieces: its content's, and the refusal the model gave instead of content."""
    if not isinstance(refusal, str) or not refusal:
        return content_parts(content)
    pieces = [content_part(item) for item in as_list(content)]
    if isinstance(content, str) and content:
        pieces.append(Part(kind="text", text=content))
    return [*pieces, Part(kind="refusal", text=refusal)]


def stream_view(stream: bytes) -> CompletionView:
    """The first choice's text and finish reason; the tool calls of every choice, legacy ``function_call`` deltas
    included, assembled by choice and call index."""
    text: list[str] = []
    calls: dict[tuple[int, int], dict[str, str]] = {}
    found = Usage()
    refusal: list[str] = []
    finish_reason: str | None = None
    error: str | None = None
    model: str | None = None
    for chunk in json_events(stream):
        # Every chunk names the model; Azure's first one (its prompt's filter results, no choices) names none.
        model = model or optional_str(chunk.get("model")) or None
        if chunk.get("error"):
            error = error_message(chunk) or json_text(chunk["error"])
        if chunk.get("usage"):
            found = usage(chunk["usage"])
        for raw_choice in as_list(chunk.get("choices")):
            choice = as_dict(raw_choice)
            position = choice.get("index", 0)
            position = position if isinstance(position, int) else 0
            delta = as_dict(choice.get("delta"))
            for raw_call in as_list(delta.get("tool_calls")):
                call = as_dict(raw_call)
                index = call.get("index", 0)
                key = (position, index if isinstance(index, int) else 0)
                slot = calls.setdefault(key, {"id": "", "name": "", "arguments": ""})
                slot["id"] = as_str(call.get("id")) or slot["id"]
                function = as_dict(call.get("function"))
                slot["name"] = as_str(function.get("name")) or slot["name"]
                slot["arguments"] += as_str(function.get("arguments"))
            legacy = delta.get("function_call")
            if isinstance(legacy, dict):
                slot = calls.setdefault((position, -1), {"id": legacy_call_id(position), "name": "", "arguments": ""})
                slot["name"] = as_str(legacy.get("name")) or slot["name"]
                slot["arguments"] += as_str(legacy.get("arguments"))
            if position != 0:
                continue  # the text and finish reason recorded are the first choice's, as for a non-streamed answer
            if isinstance(delta.get("content"), str):
                text.append(delta["content"])
            elif isinstance(choice.get("text"), str):  # a legacy completion's chunk: the text, no delta
                text.append(choice["text"])
            if isinstance(delta.get("refusal"), str):
                refusal.append(delta["refusal"])
            finish_reason = optional_str(choice.get("finish_reason")) or finish_reason
    return CompletionView(
        text=with_refusal("".join(text), "".join(refusal)),
        tool_calls=[_call(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items())],
        usage=found,
        finish_reason=finish_reason or ("error" if error is not None else None),
        parts=_answer_parts("".join(text), "".join(refusal)),
        error=error,
        model=model,
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


_CALL_MARKERS = (b'"tool_calls"', b'"function_call"')
_LATER_CHOICE = re.compile(rb'"index"\s*:\s*[1-9]')


def _mentions_a_call(chunk: dict[str, Any]) -> bool:
    for raw_choice in as_list(chunk.get("choices")):
        choice = as_dict(raw_choice)
        delta = as_dict(choice.get("delta"))
        if "tool_calls" in delta or "function_call" in delta:
            return True
        if choice.get("finish_reason") in ("tool_calls", "function_call"):
            return True
    return False


class HeldChatStream(HeldStream):
    """Chat completion chunks: held from the first chunk that mentions tool calls or a legacy function call (a delta
    or the finish reason), in any choice. The refusal ends every choice the client has seen."""

    def __init__(self) -> None:
        super().__init__()
        self._choices: set[int] = {0}

    def passed(self, event: bytes) -> None:
        if _LATER_CHOICE.search(event):
            for chunk in json_events(event):
                for choice in as_list(chunk.get("choices")):
                    index = as_dict(choice).get("index")
                    if isinstance(index, int):
                        self._choices.add(index)

    def starts_hold(self, event: bytes) -> bool:
        if any(marker in event for marker in _CALL_MARKERS):
            return True
        if b"\\u" not in event:
            return False  # the common case: no escape could spell the markers otherwise
        return any(_mentions_a_call(chunk) for chunk in json_events(event))

    def refusal_events(self, held: list[bytes], text: str) -> bytes:
        first: dict[str, Any] = {}
        usage_chunks: list[bytes] = []
        done = False
        choices = set(self._choices)
        for event in held:
            if b"[DONE]" in event:
                done = done or any(data == "[DONE]" for _, data in iter_events(event))
            for chunk in json_events(event):
                first = first or chunk
                if chunk.get("usage") and not chunk.get("choices"):
                    usage_chunks.append(event)
                choices.update(
                    as_dict(choice).get("index")
                    for choice in as_list(chunk.get("choices"))
                    if isinstance(as_dict(choice).get("index"), int)
                )
        envelope = {k: first[k] for k in ("id", "object", "created", "model", "system_fingerprint") if k in first}
        envelope.setdefault("object", "chat.completion.chunk")
        text_chunk = {**envelope, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
        stop_chunk = {
            **envelope,
            "choices": [{"index": index, "delta": {}, "finish_reason": "stop"} for index in sorted(choices)],
        }
        out = [encode_event(orjson.dumps(text_chunk)), encode_event(orjson.dumps(stop_chunk)), *usage_chunks]
        if done:
            out.append(b"data: [DONE]\n\n")
        return b"".join(out)
