"""Recorded bodies made readable for the logs viewer: the conversation a request carried and the answer it got.

Best effort over the wire formats Warden proxies — OpenAI chat completions (and the compatible providers), OpenAI
Responses, Anthropic messages and Gemini ``generateContent`` — whole or streamed. Anything not understood yields
``None`` and the viewer shows the raw body instead: a display must never fail because a body is unusual.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from providers.sse import iter_events

PartKind = Literal["text", "tool_call", "tool_result", "media", "other"]


@dataclass(slots=True)
class Part:
    kind: PartKind
    text: str = ""
    name: str | None = None
    call_id: str | None = None
    is_error: bool = False


@dataclass(slots=True)
class Turn:
    role: str
    parts: list[Part] = field(default_factory=list)


@dataclass(slots=True)
class Conversation:
    format: str
    turns: list[Turn]
    tools: list[str] = field(default_factory=list)
    """Names of the tools the request declared."""


@dataclass(slots=True)
class Answer:
    text: str = ""
    tool_calls: list[Part] = field(default_factory=list)
    error: str | None = None

    def empty(self) -> bool:
        return not self.text and not self.tool_calls and self.error is None


def loads(text: str | None) -> Any:
    if not text:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def pretty(value: Any) -> str:
    """JSON for display: indented, non-ASCII kept as is; strings that are not JSON objects stay as they are."""
    if isinstance(value, str):
        parsed = loads(value)
        if not isinstance(parsed, dict | list):
            return value
        value = parsed
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    except TypeError:
        return repr(value)


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _dicts(value: Any) -> Iterable[dict[str, Any]]:
    return (item for item in value if isinstance(item, dict)) if isinstance(value, list) else ()


def _call(name: Any, arguments: Any, call_id: Any) -> Part:
    return Part(
        "tool_call",
        text=pretty(arguments) if arguments not in (None, "") else "",
        name=_str(name) or "?",
        call_id=_str(call_id) or None,
    )


def _media(kind: str) -> Part:
    return Part("media", text=f"[{kind}]")


# --- requests ---------------------------------------------------------------------------------------------------


def read_request(provider: str, route: str | None, body: str | None) -> Conversation | None:
    data = loads(body)
    if not isinstance(data, dict):
        return None
    route = route or ""
    try:
        if "contents" in data or provider == "gemini":
            conversation = _gemini_request(data)
        elif "input" in data or route.rstrip("/").endswith("/responses"):
            conversation = _responses_request(data)
        elif provider == "anthropic" or _looks_anthropic(data):
            conversation = _anthropic_request(data)
        elif "messages" in data:
            conversation = _chat_request(data)
        else:
            return None
    except (AttributeError, TypeError, ValueError):
        return None
    return conversation if conversation.turns else None


def _looks_anthropic(data: dict[str, Any]) -> bool:
    """A top-level ``system`` or tool_use / tool_result blocks: Anthropic's shape, whoever relayed it."""
    if "messages" not in data:
        return False
    if "system" in data and not any(m.get("role") in ("system", "developer") for m in _dicts(data["messages"])):
        return True
    blocks = (b for m in _dicts(data["messages"]) for b in _dicts(m.get("content")))
    return any(b.get("type") in ("tool_use", "tool_result") for b in blocks)


def _chat_content(content: Any) -> list[Part]:
    if isinstance(content, str):
        return [Part("text", text=content)] if content else []
    parts = []
    for item in _dicts(content):
        kind = item.get("type")
        if kind in ("text", "input_text", "output_text"):
            parts.append(Part("text", text=_str(item.get("text"))))
        elif kind == "refusal":
            parts.append(Part("text", text=_str(item.get("refusal"))))
        elif kind in ("image_url", "input_image"):
            parts.append(_media("image"))
        elif kind in ("input_audio", "audio"):
            parts.append(_media("audio"))
        elif kind in ("file", "input_file"):
            parts.append(_media("file"))
        else:
            parts.append(Part("other", text=pretty(item)))
    return parts


def _chat_request(data: dict[str, Any]) -> Conversation:
    turns = []
    for message in _dicts(data.get("messages")):
        role = _str(message.get("role")) or "?"
        if role in ("tool", "function"):
            call_id = message.get("tool_call_id")
            turns.append(
                Turn(
                    "tool",
                    [
                        Part(
                            "tool_result",
                            text=_text_of(message.get("content")),
                            name=_str(message.get("name")) or None,
                            call_id=_str(call_id) or None,
                        )
                    ],
                )
            )
            continue
        parts = _chat_content(message.get("content"))
        for call in _dicts(message.get("tool_calls")):
            function = call.get("function") if isinstance(call.get("function"), dict) else {}
            parts.append(_call(function.get("name"), function.get("arguments"), call.get("id")))
        legacy = message.get("function_call")
        if isinstance(legacy, dict):
            parts.append(_call(legacy.get("name"), legacy.get("arguments"), None))
        turns.append(Turn("system" if role == "developer" else role, parts))
    tools = [_str((t.get("function") or {}).get("name")) or _str(t.get("name")) for t in _dicts(data.get("tools"))]
    return Conversation("OpenAI chat completions", turns, [t for t in tools if t])


def _text_of(content: Any) -> str:
    """Tool results and system prompts: a string or a list of text parts, as one text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for item in content:
            if isinstance(item, str):
                texts.append(item)
            elif isinstance(item, dict) and isinstance(item.get("text"), str):
                texts.append(item["text"])
            elif isinstance(item, dict) and item.get("type") in ("image", "image_url", "input_image"):
                texts.append("[image]")
            else:
                texts.append(pretty(item))
        return "\n".join(texts)
    return "" if content is None else pretty(content)


def _anthropic_blocks(content: Any) -> list[Part]:
    if isinstance(content, str):
        return [Part("text", text=content)] if content else []
    parts = []
    for block in _dicts(content):
        kind = block.get("type")
        if kind == "text":
            parts.append(Part("text", text=_str(block.get("text"))))
        elif kind in ("tool_use", "server_tool_use"):
            parts.append(_call(block.get("name"), block.get("input"), block.get("id")))
        elif kind == "tool_result":
            parts.append(
                Part(
                    "tool_result",
                    text=_text_of(block.get("content")),
                    call_id=_str(block.get("tool_use_id")) or None,
                    is_error=block.get("is_error") is True,
                )
            )
        elif kind in ("thinking", "redacted_thinking"):
            parts.append(Part("other", text="[thinking] " + _str(block.get("thinking"))))
        elif kind in ("image", "document"):
            parts.append(_media(kind))
        else:
            parts.append(Part("other", text=pretty(block)))
    return parts


def _anthropic_request(data: dict[str, Any]) -> Conversation:
    turns = []
    system = data.get("system")
    if system:
        turns.append(Turn("system", [Part("text", text=_text_of(system))]))
    for message in _dicts(data.get("messages")):
        parts = _anthropic_blocks(message.get("content"))
        role = _str(message.get("role")) or "?"
        # A user turn made only of tool results is the tools speaking, whatever the wire format calls it.
        if parts and all(p.kind == "tool_result" for p in parts):
            role = "tool"
        turns.append(Turn(role, parts))
    tools = [_str(t.get("name")) for t in _dicts(data.get("tools"))]
    return Conversation("Anthropic messages", turns, [t for t in tools if t])


def _gemini_parts(parts: Any) -> list[Part]:
    out = []
    for part in _dicts(parts):
        if isinstance(part.get("text"), str):
            label = "[thought] " if part.get("thought") is True else ""
            out.append(Part("text" if not label else "other", text=label + part["text"]))
        elif isinstance(call := part.get("functionCall") or part.get("function_call"), dict):
            out.append(_call(call.get("name"), call.get("args"), call.get("id")))
        elif isinstance(result := part.get("functionResponse") or part.get("function_response"), dict):
            out.append(
                Part(
                    "tool_result",
                    text=pretty(result.get("response")),
                    name=_str(result.get("name")) or None,
                    call_id=_str(result.get("id")) or None,
                )
            )
        elif "inlineData" in part or "inline_data" in part or "fileData" in part or "file_data" in part:
            out.append(_media("file"))
        else:
            out.append(Part("other", text=pretty(part)))
    return out


def _gemini_request(data: dict[str, Any]) -> Conversation:
    turns = []
    system = data.get("systemInstruction") or data.get("system_instruction")
    if isinstance(system, dict):
        turns.append(Turn("system", _gemini_parts(system.get("parts"))))
    elif isinstance(system, str):
        turns.append(Turn("system", [Part("text", text=system)]))
    for content in _dicts(data.get("contents")):
        parts = _gemini_parts(content.get("parts"))
        role = {"model": "assistant"}.get(_str(content.get("role")), _str(content.get("role")) or "user")
        if parts and all(p.kind == "tool_result" for p in parts):
            role = "tool"
        turns.append(Turn(role, parts))
    tools = []
    for tool in _dicts(data.get("tools")):
        declarations = tool.get("functionDeclarations") or tool.get("function_declarations")
        tools += [_str(d.get("name")) for d in _dicts(declarations)]
    return Conversation("Gemini generateContent", turns, [t for t in tools if t])


def _responses_items(items: Any) -> list[Turn]:
    turns = []
    for item in _dicts(items):
        kind = item.get("type")
        if kind == "function_call":
            turns.append(Turn("assistant", [_call(item.get("name"), item.get("arguments"), item.get("call_id"))]))
        elif kind == "function_call_output":
            turns.append(
                Turn(
                    "tool",
                    [Part("tool_result", text=_text_of(item.get("output")), call_id=_str(item.get("call_id")) or None)],
                )
            )
        elif kind in (None, "message"):
            role = _str(item.get("role")) or "?"
            turns.append(Turn("system" if role == "developer" else role, _chat_content(item.get("content"))))
        elif kind == "reasoning":
            summary = "\n".join(_str(s.get("text")) for s in _dicts(item.get("summary")))
            turns.append(Turn("assistant", [Part("other", text="[reasoning] " + summary)]))
        else:
            turns.append(Turn(_str(item.get("role")) or "?", [Part("other", text=pretty(item))]))
    return turns


def _responses_request(data: dict[str, Any]) -> Conversation:
    turns = []
    if isinstance(data.get("instructions"), str) and data["instructions"]:
        turns.append(Turn("system", [Part("text", text=data["instructions"])]))
    raw = data.get("input")
    if isinstance(raw, str):
        turns.append(Turn("user", [Part("text", text=raw)]))
    else:
        turns += _responses_items(raw)
    tools = [_str(t.get("name")) or _str(t.get("type")) for t in _dicts(data.get("tools"))]
    return Conversation("OpenAI Responses", turns, [t for t in tools if t])


# --- answers ----------------------------------------------------------------------------------------------------


def read_answer(body: str | None, stream: bool) -> Answer | None:
    """The answer's text and tool calls, from a whole JSON body or from the event stream the client got."""
    if not body:
        return None
    try:
        answer = _streamed(body) if stream or body.lstrip().startswith(("data:", "event:")) else _whole(loads(body))
    except (AttributeError, TypeError, ValueError):
        return None
    return None if answer is None or answer.empty() else answer


def _error(data: dict[str, Any]) -> str | None:
    error = data.get("error")
    if isinstance(error, dict):
        return _str(error.get("message")) or pretty(error)
    if isinstance(error, str):
        return error
    return None


def _whole(data: Any) -> Answer | None:
    if isinstance(data, list):  # Gemini's streamGenerateContent without alt=sse: a JSON array of responses
        answer = Answer()
        for item in data:
            _merge(answer, _whole(item))
        return answer
    if not isinstance(data, dict):
        return None
    if (error := _error(data)) is not None:
        return Answer(error=error)
    if isinstance(data.get("choices"), list):
        answer = Answer()
        for choice in _dicts(data["choices"]):
            message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
            answer.text += _text_of(message.get("content")) or _str(message.get("refusal"))
            for call in _dicts(message.get("tool_calls")):
                function = call.get("function") if isinstance(call.get("function"), dict) else {}
                answer.tool_calls.append(_call(function.get("name"), function.get("arguments"), call.get("id")))
        return answer
    if data.get("type") == "message" and isinstance(data.get("content"), list):
        parts = _anthropic_blocks(data["content"])
        return Answer(
            text="".join(p.text for p in parts if p.kind == "text"),
            tool_calls=[p for p in parts if p.kind == "tool_call"],
        )
    if isinstance(data.get("candidates"), list):
        answer = Answer()
        for candidate in _dicts(data["candidates"]):
            content = candidate.get("content") if isinstance(candidate.get("content"), dict) else {}
            parts = _gemini_parts(content.get("parts"))
            answer.text += "".join(p.text for p in parts if p.kind == "text")
            answer.tool_calls += [p for p in parts if p.kind == "tool_call"]
        return answer
    if data.get("object") == "response" or isinstance(data.get("output"), list):
        answer = Answer()
        for turn in _responses_items(data.get("output")):
            answer.text += "".join(p.text for p in turn.parts if p.kind == "text")
            answer.tool_calls += [p for p in turn.parts if p.kind == "tool_call"]
        return answer
    return None


def _merge(into: Answer, other: Answer | None) -> None:
    if other is not None:
        into.text += other.text
        into.tool_calls += other.tool_calls
        into.error = into.error or other.error


def _streamed(body: str) -> Answer | None:
    answer = Answer()
    calls: dict[Any, dict[str, Any]] = {}
    understood = False
    for event, data in iter_events(body.encode()):
        if data.strip() == "[DONE]":
            continue
        payload = loads(data)
        if not isinstance(payload, dict):
            continue
        understood |= _stream_event(answer, calls, event, payload)
    for call in calls.values():
        arguments = call["arguments"]
        answer.tool_calls.append(_call(call["name"], arguments if arguments else None, call["id"]))
    return answer if understood else None


def _stream_event(answer: Answer, calls: dict[Any, dict[str, Any]], event: str | None, payload: dict[str, Any]) -> bool:
    """Fold one event into the answer; False when the event is of no known kind."""
    kind = payload.get("type") or event
    if (error := _error(payload)) is not None:
        answer.error = error
        return True
    if isinstance(payload.get("choices"), list):  # OpenAI chat chunk
        for choice in _dicts(payload["choices"]):
            delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
            answer.text += _str(delta.get("content"))
            for call in _dicts(delta.get("tool_calls")):
                entry = calls.setdefault(("chat", call.get("index", 0)), {"id": None, "name": None, "arguments": ""})
                function = call.get("function") if isinstance(call.get("function"), dict) else {}
                entry["id"] = entry["id"] or call.get("id")
                entry["name"] = entry["name"] or function.get("name")
                entry["arguments"] += _str(function.get("arguments"))
        return True
    if isinstance(payload.get("candidates"), list):  # Gemini
        _merge(answer, _whole(payload))
        return True
    if kind == "content_block_start":  # Anthropic
        block = payload.get("content_block") if isinstance(payload.get("content_block"), dict) else {}
        if block.get("type") in ("tool_use", "server_tool_use"):
            calls[("anthropic", payload.get("index"))] = {
                "id": block.get("id"),
                "name": block.get("name"),
                "arguments": "",
            }
        elif block.get("type") == "text":
            answer.text += _str(block.get("text"))
        return True
    if kind == "content_block_delta":
        delta = payload.get("delta") if isinstance(payload.get("delta"), dict) else {}
        if delta.get("type") == "text_delta":
            answer.text += _str(delta.get("text"))
        elif delta.get("type") == "input_json_delta":
            entry = calls.setdefault(("anthropic", payload.get("index")), {"id": None, "name": None, "arguments": ""})
            entry["arguments"] += _str(delta.get("partial_json"))
        return True
    if kind in ("message_start", "message_delta", "message_stop", "content_block_stop", "ping"):
        return True
    if kind == "response.completed" and isinstance(payload.get("response"), dict):  # OpenAI Responses: the whole
        complete = _whole(payload["response"])
        if complete is not None and not complete.empty():
            answer.text, answer.tool_calls = complete.text, complete.tool_calls
            calls.clear()
        return True
    if kind == "response.output_text.delta":
        answer.text += _str(payload.get("delta"))
        return True
    return isinstance(kind, str) and kind.startswith("response.")
