"""Google's Gemini API (Generative Language, ``/v1beta/models/{model}:{method}``): the model and the streaming flag
are in the path; contents hold parts (text, functionCall, functionResponse); field names come in lowerCamelCase or
snake_case. ``:streamGenerateContent`` streams SSE with ``?alt=sse`` and one JSON array without it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
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
    media_kind,
    optional_str,
    read_arguments,
    sum_tokens,
)
from providers.held_stream import HeldStream
from providers.sse import json_events
from schemas.view import CompletionView, ConversationView, Message, Part, ToolCall, ToolDefinition, ToolResult, Usage

STREAM_METHOD = "streamGenerateContent"
_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    402: "RESOURCE_EXHAUSTED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def target(route: str) -> tuple[str, str]:
    """``/v1beta/models/gemini-2.5-flash:generateContent`` → ``("gemini-2.5-flash", "generateContent")``; a tuned
    model keeps its ``tunedModels/`` prefix; a route naming no model gives ``""``."""
    _, _, resource = route.lstrip("/").partition("/")  # past the API version
    name, colon, method = resource.rpartition(":")
    if not colon:
        name, method = resource, ""
    if name.startswith("models/"):
        return name[7:], method
    return (name if name.startswith("tunedModels/") else ""), method


def _field(container: dict[str, Any], camel: str, snake: str) -> Any:
    return container[camel] if camel in container else container.get(snake)


def _text(parts: list[Any]) -> str:
    """Text parts, without the model's thoughts."""
    return "".join(
        part["text"]
        for part in parts
        if isinstance(part, dict) and isinstance(part.get("text"), str) and not part.get("thought")
    )


def _is_plain(part: Any) -> bool:
    """Text that is not a thought, or a function call or response (which the view gives apart)."""
    if not isinstance(part, dict):
        return False
    if isinstance(part.get("text"), str):
        return not part.get("thought")
    return isinstance(
        _field(part, "functionCall", "function_call") or _field(part, "functionResponse", "function_response"), dict
    )


def _part(part: dict[str, Any]) -> Part | None:
    if isinstance(part.get("text"), str):
        return Part(kind="reasoning" if part.get("thought") else "text", text=part["text"])
    if isinstance(
        _field(part, "functionCall", "function_call") or _field(part, "functionResponse", "function_response"), dict
    ):
        return None
    data = _field(part, "inlineData", "inline_data") or _field(part, "fileData", "file_data")
    if isinstance(data, dict):
        return Part(kind="media", media=media_kind(_field(data, "mimeType", "mime_type")))
    return Part(kind="other", text=json_text(part))


def _parts(parts: list[Any]) -> list[Part]:
    """``Message.parts``: none when the parts are plain text and calls (checked first: this runs on every request)."""
    for part in parts:  # a loop, not all(): cheaper on the long histories agents send
        if not _is_plain(part):
            break
    else:
        return []
    return beyond_text([piece for part in parts if isinstance(part, dict) and (piece := _part(part)) is not None])


def wire_format(method: str) -> str:
    if method in ("generateContent", STREAM_METHOD):
        return "Gemini generateContent"
    return f"Gemini {method}" if method else "Gemini"


def usage(raw: Any) -> Usage:
    """Tool-use prompt tokens are input, thinking tokens output (as OpenAI counts reasoning in completion tokens)."""
    found = as_dict(raw)
    if not found:
        return Usage()
    thoughts = as_int(_field(found, "thoughtsTokenCount", "thoughts_token_count"))
    return Usage(
        input_tokens=sum_tokens(
            as_int(_field(found, "promptTokenCount", "prompt_token_count")),
            as_int(_field(found, "toolUsePromptTokenCount", "tool_use_prompt_token_count")),
        ),
        output_tokens=sum_tokens(as_int(_field(found, "candidatesTokenCount", "candidates_token_count")), thoughts),
        reasoning_tokens=thoughts,
        cached_tokens=as_int(_field(found, "cachedContentTokenCount", "cached_content_token_count")),
    )


class _CallIds:
    """Gemini function calls and responses often carry no id; they pair by name and order. Calls without one are
    named ``{name}#{n}`` (n: position among the turn's calls) and a response without one takes the id of the first
    unanswered call of its name from the last model turn."""

    def __init__(self) -> None:
        self._unanswered: dict[str, list[str]] = {}
        self._names: dict[str, str] = {}  # every call so far, by id

    def calls(self, parts: list[Any]) -> list[ToolCall]:
        calls = []
        self._unanswered = {}
        for part in parts:
            call = as_dict(_field(as_dict(part), "functionCall", "function_call"))
            if not call:
                continue
            name = as_str(call.get("name"))
            call_id = as_str(call.get("id")) or f"{name}#{len(calls)}"
            self._unanswered.setdefault(name, []).append(call_id)
            self._names[call_id] = name
            arguments, error = read_arguments(call.get("args"))
            calls.append(ToolCall(id=call_id, name=name, arguments=arguments, arguments_error=error))
        return calls

    def result(self, response: dict[str, Any], position: int) -> ToolResult:
        """The result's tool is the one its call named: by the call's id when the response gives one, else the
        call it pairs with by name; a response that answers no call in the history has no known tool."""
        name = as_str(response.get("name"))
        given = as_str(response.get("id"))
        waiting = self._unanswered.get(name) or []
        if given:
            call_id = given
            if given in waiting:
                waiting.remove(given)
        else:
            call_id = waiting.pop(0) if waiting else f"{name}#{position}"
        tool = self._names.get(call_id)
        return ToolResult(tool_call_id=call_id, name=tool, content=json_text(response.get("response")))


def _conversation(body: dict[str, Any]) -> list[Message]:
    messages: list[Message] = []
    system = _field(body, "systemInstruction", "system_instruction")
    system_text = system if isinstance(system, str) else _text(as_list(as_dict(system).get("parts")))
    if system_text:
        messages.append(Message(role="system", text=system_text, index=-1))
    contents = as_list(body.get("contents"))
    if not contents and isinstance(body.get("content"), dict):
        contents = [body["content"]]  # embedContent
    ids = _CallIds()
    for index, content in enumerate(contents):
        if isinstance(content, str):
            messages.append(Message(role="user", text=content, index=index))
            continue
        content = as_dict(content)
        parts = as_list(content.get("parts"))
        if content.get("role") == "model":
            calls = ids.calls(parts)
            messages.append(
                Message(role="assistant", text=_text(parts), tool_calls=calls, index=index, parts=_parts(parts))
            )
            continue
        pending: list[Any] = []
        answered = 0
        for part in parts:
            response = _field(as_dict(part), "functionResponse", "function_response")
            if not isinstance(response, dict):
                pending.append(part)
                continue
            if _text(pending) or _parts(pending):
                messages.append(Message(role="user", text=_text(pending), index=index, parts=_parts(pending)))
            pending = []
            result = ids.result(response, answered)
            answered += 1
            messages.append(Message(role="tool", text=result.content, tool_result=result, index=index))
        if pending or not parts:
            messages.append(Message(role="user", text=_text(pending), index=index, parts=_parts(pending)))
    return messages


def _tools(body: dict[str, Any]) -> list[ToolDefinition]:
    tools = []
    for tool in as_list(body.get("tools")):
        for declaration in as_list(_field(as_dict(tool), "functionDeclarations", "function_declarations")):
            declaration = as_dict(declaration)
            schema = declaration.get("parameters") or _field(
                declaration, "parametersJsonSchema", "parameters_json_schema"
            )
            tools.append(
                ToolDefinition(
                    name=as_str(declaration.get("name")),
                    description=optional_str(declaration.get("description")),
                    parameters=schema if isinstance(schema, dict) else None,
                )
            )
    return tools


def _chunks(stream: bytes) -> Iterator[Any]:
    """The JSON objects of a stream, SSE or one JSON array (or one whole object, when an upstream answered a stream
    request that way); a cut array yields the elements that arrived whole."""
    text = stream.decode("utf-8", "replace")
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            yield loads_lenient(stripped)
            return
        except NotJSON:
            pass
    if not stripped.startswith("["):
        yield from json_events(stream)
        return
    decoder = json.JSONDecoder()
    position, end = len(text) - len(stripped) + 1, len(text)
    while True:
        while position < end and text[position] in " \t\r\n,":
            position += 1
        if position >= end or text[position] == "]":
            return
        try:
            element, position = decoder.raw_decode(text, position)
        except ValueError:
            return
        yield element


class GeminiAdapter(ProviderAdapter):
    name = "gemini"
    default_base_url = "https://generativelanguage.googleapis.com"
    top_level_paths = frozenset({"v1", "v1beta", "v1alpha", "v1beta1", "upload", "download"})

    def request_meta(self, route: str, body: Any, query: str) -> RequestMeta:
        model, method = target(route)
        return RequestMeta(model=model, stream=method == STREAM_METHOD)

    def answer_streams(self, route: str, requested: bool, content_type: str) -> bool:
        """``:streamGenerateContent`` streams as SSE or as one JSON array (``application/json``): both are streams."""
        return requested or content_type.startswith("text/event-stream")

    def error_body(self, status: int, message: str, kind: str) -> bytes:
        return orjson.dumps(self._error(status, message))

    @staticmethod
    def _error(status: int, message: str) -> dict[str, Any]:
        """Google's error envelope, the same in a body and in a stream."""
        name = _STATUSES.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")
        return {"error": {"code": status, "message": message, "status": name}}

    def stream_error_event(
        self, message: str, *, route: str = "", content_type: str = "text/event-stream", started: bool = True
    ) -> bytes:
        # google-genai raises its APIError for a streamed element whose first key is "error".
        payload = orjson.dumps(self._error(502, message))
        if content_type.startswith("application/json"):
            # The JSON-array stream: one more element, then close the array the upstream left open.
            return (b"\n,\r\n" if started else b"[") + payload + b"\n]"
        return b"data: " + payload + b"\r\n\r\n"

    def request_view(self, route: str, body: Any) -> ConversationView:
        meta = self.request_meta(route, body, "")
        view = ConversationView(
            provider=self.name, wire_format=wire_format(target(route)[1]), model=meta.model, stream=meta.stream
        )
        if isinstance(body, dict):
            view.messages, view.tools = _conversation(body), _tools(body)
        return view

    def completion_view(self, route: str, body: Any) -> CompletionView:
        if isinstance(body, list):  # the JSON-array stream, read whole (an error answer to a stream request is one)
            return self._assemble(body)
        if not isinstance(body, dict):
            return CompletionView()
        return self._assemble([body])

    def stream_view(self, route: str, stream: bytes) -> CompletionView:
        return self._assemble(_chunks(stream))

    @staticmethod
    def _assemble(chunks: Any) -> CompletionView:
        """A response, or the chunks of a stream (each a partial response: text parts add up, function calls come
        whole, usage and finish reason are final in the last chunk)."""
        parts: list[Any] = []
        others: list[Any] = []
        found = Usage()
        finish_reason: str | None = None
        error: str | None = None
        for chunk in chunks:
            if not isinstance(chunk, dict):
                continue
            if "error" in chunk:
                error = error_message(chunk) or json_text(chunk["error"])
                continue
            candidates = as_list(chunk.get("candidates"))
            first = as_dict(candidates[0]) if candidates else {}
            parts.extend(as_list(as_dict(first.get("content")).get("parts")))
            for other in candidates[1:]:
                # Every candidate's calls are judged (``candidateCount``); the text recorded is the first one's.
                others.extend(_calls_only(as_list(as_dict(as_dict(other).get("content")).get("parts"))))
            finish_reason = optional_str(_field(first, "finishReason", "finish_reason")) or finish_reason
            if not candidates:
                feedback = as_dict(_field(chunk, "promptFeedback", "prompt_feedback"))
                finish_reason = optional_str(_field(feedback, "blockReason", "block_reason")) or finish_reason
            metadata = _field(chunk, "usageMetadata", "usage_metadata")
            if metadata:
                found = usage(metadata)
        return CompletionView(
            text=_text(parts),
            tool_calls=_CallIds().calls(parts + others),
            usage=found,
            finish_reason=finish_reason or ("error" if error is not None else None),
            parts=_parts(parts),
            error=error,
        )

    # -- inline policy support --------------------------------------------------------------------------------------

    def replace_tool_results(self, route: str, body: Any, replacements: Mapping[str, str]) -> None:
        """Walks the contents as ``request_view`` does, so a response without an id gets the same ``{name}#{n}``."""
        if not isinstance(body, dict) or not replacements:
            return
        ids = _CallIds()
        for content in as_list(body.get("contents")):
            if not isinstance(content, dict):
                continue
            parts = as_list(content.get("parts"))
            if content.get("role") == "model":
                ids.calls(parts)
                continue
            answered = 0
            for part in parts:
                response = _field(as_dict(part), "functionResponse", "function_response")
                if not isinstance(response, dict):
                    continue
                result = ids.result(response, answered)
                answered += 1
                if result.tool_call_id in replacements:
                    response["response"] = {"content": replacements[result.tool_call_id]}

    def refusal_body(self, route: str, body: Any, text: str) -> bytes:
        if not isinstance(body, dict):
            return orjson.dumps(body)
        candidates = [_refusal_candidate(candidate, text) for candidate in as_list(body.get("candidates"))]
        return orjson.dumps({**body, "candidates": candidates or [_refusal_candidate({}, text)]})

    def held_stream(self, route: str, content_type: str) -> HeldStream:
        return HeldGeminiStream(array=content_type.startswith("application/json"))


def _refusal_candidate(candidate: Any, text: str) -> dict[str, Any]:
    """A candidate turned into one text part ended normally (the spelling of its finish reason kept)."""
    kept = {k: v for k, v in as_dict(candidate).items() if k not in ("finishReason", "finish_reason", "content")}
    reason = "finish_reason" if "finish_reason" in as_dict(candidate) else "finishReason"
    return {"content": {"parts": [{"text": text}], "role": "model"}, reason: "STOP", **kept}


def _calls_only(parts: list[Any]) -> list[Any]:
    return [part for part in parts if isinstance(_field(as_dict(part), "functionCall", "function_call"), dict)]


def _calls_a_function(chunk: Any) -> bool:
    for candidate in as_list(as_dict(chunk).get("candidates")):
        for part in as_list(as_dict(as_dict(candidate).get("content")).get("parts")):
            if isinstance(_field(as_dict(part), "functionCall", "function_call"), dict):
                return True
    return False


_STRUCTURE = re.compile(rb'[\[\]{}"]')
_STRING_END = re.compile(rb'["\\]')
_ARRAY_JUNK = b" \t\r\n[,"


class HeldGeminiStream(HeldStream):
    """Gemini chunks, in either stream shape: held from the first chunk whose parts hold a ``functionCall``. The
    refusal is one last chunk with a text part and ``finishReason: STOP`` keeping the held usage; in the JSON-array
    shape it also closes the array (or opens it, when its first element was held).

    The shape is read from the first byte (``[`` opens a JSON array); ``array`` is the guess until then."""

    def __init__(self, *, array: bool = False) -> None:
        super().__init__()
        self._array = array
        self._shape_known = False
        self._object = False
        self._last: dict[str, Any] = {}  # the last chunk the client got: ids and usage when the held carry none
        self._opened = False  # array shape: the client got the opening bracket
        # Array scanner state: where scanning resumes in the pending bytes, nesting depth inside an element, whether in
        # a string, whether the outer array was opened / closed.
        self._scan = 0
        self._depth = 0
        self._in_string = False
        self._outer = False
        self._closed = False

    def feed(self, chunk: bytes) -> bytes:
        if not self._shape_known:
            head = (self._pending + chunk).lstrip()
            if not head:
                self._pending += chunk
                return b""
            self._array, self._shape_known = head.startswith(b"["), True
            # One whole JSON object where a stream was asked for: nothing passes until it has been judged whole.
            self._object = head.startswith(b"{")
        if self._object:
            self._pending += chunk
            return b""
        if not self._array:
            return super().feed(chunk)
        self._pending += chunk
        return self._feed_array()

    def _feed_array(self) -> bytes:
        """Cut the array into units, each an element with the bracket or comma before it, and judge each whole one."""
        buffer, position, start = self._pending, self._scan, 0
        out: list[bytes] = []
        while not self._closed:
            if self._in_string:
                match = _STRING_END.search(buffer, position)
                if match is None:
                    position = len(buffer)
                    break
                if match.group() == b"\\":
                    if match.end() >= len(buffer):
                        position = match.start()  # the escaped byte has not arrived
                        break
                    position = match.end() + 1
                    continue
                self._in_string, position = False, match.end()
                continue
            match = _STRUCTURE.search(buffer, position)
            if match is None:
                position = len(buffer)
                break
            token, position = match.group(), match.end()
            if token == b'"':
                self._in_string = True
            elif token in (b"[", b"{"):
                if self._outer:
                    self._depth += 1
                else:
                    self._outer = True
            elif self._depth == 0:
                self._closed = True  # the array's own closing bracket: the rest is its tail
            else:
                self._depth -= 1
                if self._depth == 0:
                    unit, start = buffer[start:position], position
                    if self.held or self.starts_hold(unit):
                        self.held.append(unit)
                    else:
                        out.append(unit)
                        self.passed(unit)
        if self._closed and not self.held:
            out.append(buffer[start:])
            start = position = len(buffer)
        self._pending, self._scan = buffer[start:], position - start
        return b"".join(out)

    @staticmethod
    def _chunks(event: bytes) -> list[Any]:
        """The chunks in one SSE event (or several, however they were cut) or one array unit."""
        stripped = event.lstrip(_ARRAY_JUNK)
        if stripped.startswith(b"{"):
            try:
                return [loads_lenient(stripped)]
            except NotJSON:
                return []
        return list(json_events(event))

    @classmethod
    def _chunk(cls, event: bytes) -> Any:
        chunks = cls._chunks(event)
        return chunks[0] if chunks else None

    def passed(self, event: bytes) -> None:
        self._opened = True
        chunk = self._chunk(event)
        if isinstance(chunk, dict) and "candidates" in chunk:
            self._last = chunk

    def starts_hold(self, event: bytes) -> bool:
        if b"functionCall" not in event and b"function_call" not in event and b"\\u" not in event:
            return False  # the common case, decided without parsing (no escape could spell the markers otherwise)
        return any(_calls_a_function(chunk) for chunk in self._chunks(event))

    def refusal_events(self, held: list[bytes], text: str) -> bytes:
        last, usage_metadata = self._last, _field(self._last, "usageMetadata", "usage_metadata")
        if self._object:
            held = [self._pending]
        for event in held:
            chunk = self._chunk(event)
            if isinstance(chunk, dict) and "candidates" in chunk:
                last = chunk
                usage_metadata = _field(chunk, "usageMetadata", "usage_metadata") or usage_metadata
        candidates = as_list(last.get("candidates"))
        final: dict[str, Any] = {"candidates": [_refusal_candidate(candidates[0] if candidates else {}, text)]}
        if usage_metadata:
            final["usageMetadata"] = usage_metadata
        for camel, snake in (("modelVersion", "model_version"), ("responseId", "response_id")):
            value = _field(last, camel, snake)
            if value is not None:
                final[camel] = value
        if self._object:
            return orjson.dumps(final)
        if not self._array:
            return b"data: " + orjson.dumps(final) + b"\r\n\r\n"
        return (b"\n,\r\n" if self._opened else b"[") + orjson.dumps(final) + b"\n]"
