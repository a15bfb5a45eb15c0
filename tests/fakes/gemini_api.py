"""The Gemini (Generative Language API) wire format: generateContent, streamGenerateContent as SSE (`alt=sse`) and as
a streamed JSON array (without it), countTokens, embedContent and the models list, with Google's
`{"error": {"code", "message", "status"}}` envelope.

Served under every public API version (`v1`, `v1beta`, `v1alpha`): google-genai picks one by default and lets the
caller choose another."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson
from aiohttp import web

from .script import Plan, ToolSpec, Turn, embedding, plan
from .wire import JSON_KEY, SEQ_KEY, EventStream, FakeState, json_response, sse, truncated_json

API_VERSIONS = ("v1", "v1beta", "v1alpha")
DEFAULT_EMBEDDING_DIMENSIONS = 768
MODELS = (
    ("gemini-2.0-flash", "Gemini 2.0 Flash", 1_048_576, 8_192),
    ("gemini-2.5-flash", "Gemini 2.5 Flash", 1_048_576, 65_536),
    ("gemini-2.5-pro", "Gemini 2.5 Pro", 1_048_576, 65_536),
    ("text-embedding-004", "Text Embedding 004", 2_048, 1),
)
# Headers a Google front end adds to every answer.
HEADERS = {
    "server": "scaffolding on HTTPServer2",
    "vary": "Origin, X-Origin, Referer",
    "server-timing": "gfet4t7; dur=1",
    "x-xss-protection": "0",
    "x-frame-options": "SAMEORIGIN",
    "x-content-type-options": "nosniff",
}

_STATUSES = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "Request had invalid authentication credentials."),
    403: ("PERMISSION_DENIED", "The caller does not have permission."),
    404: ("NOT_FOUND", "Requested entity was not found."),
    409: ("ABORTED", "The operation was aborted."),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    499: ("CANCELLED", "The operation was cancelled."),
    500: (
        "INTERNAL",
        "An internal error has occurred. Please retry or report in https://developers.generativeai.google",
    ),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "The request timed out. Please try again."),
}
_NO_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
_BAD_KEY_DETAILS = [
    {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    }
]


class GeminiFake:
    """Handlers for one fake Gemini upstream."""

    def __init__(self, state: FakeState) -> None:
        self.state = state

    def routes(self) -> list[web.RouteDef]:
        versions = "|".join(API_VERSIONS)
        return [
            web.post(f"/{{version:{versions}}}/models/{{target}}", self.call_model),
            web.get(f"/{{version:{versions}}}/models", self.models),
            web.get(f"/{{version:{versions}}}/models/{{model}}", self.model),
        ]

    # -- envelope -------------------------------------------------------------------------------------------------

    def error(
        self, request: web.Request, status: int, message: str | None = None, details: list[Any] | None = None
    ) -> web.Response:
        payload = _error_payload(status, message, details)
        return json_response(payload, status=status, headers=HEADERS, charset="UTF-8")

    def not_found(self, request: web.Request) -> web.Response:
        return self.error(request, 404, f"Method not found: {request.method} {request.path}")

    def authenticate(self, request: web.Request) -> web.Response | None:
        key = request.headers.get("x-goog-api-key", "").strip() or request.query.get("key", "").strip()
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if not key and scheme.lower() == "bearer":
            key = token.strip()  # OAuth access tokens are accepted too
        if not key:
            # What the real API answers to a call without any credential.
            return self.error(request, 403, _NO_KEY)
        accepted = self.state.accepted_keys
        if accepted is not None and key not in accepted:
            return self.error(request, 400, "API key not valid. Please pass a valid API key.", _BAD_KEY_DETAILS)
        return None

    # -- models/{model}:{method} ----------------------------------------------------------------------------------

    async def call_model(self, request: web.Request) -> web.StreamResponse:
        model, _, method = request.match_info["target"].rpartition(":")
        body = request[JSON_KEY]
        if method == "embedContent":
            return self._embed(request, body)
        if method not in ("generateContent", "streamGenerateContent", "countTokens"):
            return self.not_found(request)
        if not isinstance(body, dict) or not isinstance(body.get("contents"), list) or not body["contents"]:
            return self.error(request, 400, "* GenerateContentRequest.contents: contents is not specified")
        answer = plan(_turn(model, body))
        if method == "countTokens":
            payload = {"totalTokens": answer.input_tokens, "promptTokensDetails": _modality(answer.input_tokens)}
            return json_response(payload, headers=HEADERS, charset="UTF-8")
        if answer.slow:
            await asyncio.sleep(answer.slow)
        if answer.error_status:
            return self.error(request, answer.error_status)
        seq = request[SEQ_KEY]
        if method == "streamGenerateContent":
            return await self._stream(request, model, seq, answer, sse_mode=request.query.get("alt") == "sse")
        payload = _response(model, seq, _parts(answer), answer, final=True)
        if answer.stream_fail:
            return await truncated_json(request, payload, HEADERS)
        response = web.Response(body=_pretty(payload), headers=HEADERS)
        response.content_type = "application/json"
        response.charset = "UTF-8"
        return response

    async def _stream(self, request: web.Request, model: str, seq: int, answer: Plan, *, sse_mode: bool) -> Any:
        deltas = () if answer.endless else answer.text_deltas()
        chunks: list[list[dict[str, Any]]] = [[{"text": piece}] for piece in deltas]
        if answer.tool_calls:
            # Gemini sends function calls whole, never as partial arguments.
            chunks.append([part for part in _parts(answer) if "functionCall" in part])
        written = 0

        def encode(payload: dict[str, Any]) -> bytes:
            nonlocal written
            written += 1
            if sse_mode:
                return sse(payload, newline=b"\r\n")
            # Without alt=sse the body is one JSON array whose elements arrive as they are generated.
            return (b"[" if written == 1 else b"\n,\r\n") + _pretty(payload)

        def error_event() -> bytes:
            error = encode(_error_payload(answer.stream_error or 500))
            return error if sse_mode else error + b"\n]"

        stream = await EventStream.open(
            request,
            answer,
            self.state,
            headers=HEADERS,
            content_type="text/event-stream" if sse_mode else "application/json",
            charset=None if sse_mode else "UTF-8",
            error_event=error_event,
        )
        if answer.endless:
            for piece in answer.text_deltas():
                await stream.send(encode(_response(model, seq, [{"text": piece}], answer, final=False)), delta=True)
        for number, parts in enumerate(chunks):
            final = number == len(chunks) - 1
            await stream.send(encode(_response(model, seq, parts, answer, final=final)), delta=True, final=final)
        if not sse_mode:
            await stream.send(b"\n]")
        return await stream.close()

    def _embed(self, request: web.Request, body: Any) -> web.Response:
        content = body.get("content") if isinstance(body, dict) else None
        if not isinstance(content, dict):
            return self.error(request, 400, "* EmbedContentRequest.content: content is not specified")
        text = "\n".join(_part_text(part) for part in content.get("parts") or [])
        dimensions = body.get("outputDimensionality") or body.get("output_dimensionality")
        values = embedding(text, int(dimensions or DEFAULT_EMBEDDING_DIMENSIONS))
        return json_response({"embedding": {"values": values}}, headers=HEADERS, charset="UTF-8")

    # -- models ---------------------------------------------------------------------------------------------------

    async def models(self, request: web.Request) -> web.Response:
        return json_response({"models": [_model(*entry) for entry in MODELS]}, headers=HEADERS, charset="UTF-8")

    async def model(self, request: web.Request) -> web.Response:
        wanted = request.match_info["model"]
        for entry in MODELS:
            if entry[0] == wanted:
                return json_response(_model(*entry), headers=HEADERS, charset="UTF-8")
        return self.error(request, 404, f"models/{wanted} is not found for API version {request.match_info['version']}")


# -- reading requests -----------------------------------------------------------------------------------------------


def _field(container: dict[str, Any], camel: str, snake: str) -> Any:
    """Gemini's JSON accepts both lowerCamelCase and snake_case field names."""
    return container.get(camel, container.get(snake))


def _part_text(part: Any) -> str:
    if not isinstance(part, dict):
        return ""
    if isinstance(part.get("text"), str):
        return part["text"]
    response = _field(part, "functionResponse", "function_response")
    if isinstance(response, dict):
        result = response.get("response")
        if isinstance(result, dict) and len(result) == 1 and isinstance(next(iter(result.values())), str):
            return next(iter(result.values()))
        return json.dumps(result, ensure_ascii=False) if result is not None else ""
    return ""


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return "\n".join(text for text in map(_part_text, content.get("parts") or []) if text)
    return ""


def _turn(model: str, body: dict[str, Any]) -> Turn:
    contents = [content for content in body["contents"] if isinstance(content, dict)]
    system = _field(body, "systemInstruction", "system_instruction")
    texts = [_content_text(system)] + [_content_text(content) for content in contents]
    last = contents[-1] if contents else {}
    is_tool_result = any(
        isinstance(part, dict) and _field(part, "functionResponse", "function_response") is not None
        for part in last.get("parts") or []
    )
    tools = []
    for tool in body.get("tools") or []:
        declarations = _field(tool, "functionDeclarations", "function_declarations") if isinstance(tool, dict) else None
        for declaration in declarations or []:
            schema = declaration.get("parameters") or _field(
                declaration, "parametersJsonSchema", "parameters_json_schema"
            )
            tools.append(ToolSpec(name=str(declaration.get("name", "")), parameters=schema or {}))
    return Turn(
        model=model,
        prompt=_content_text(last),
        prompt_is_tool_result=is_tool_result,
        input_texts=tuple(texts),
        tools=tuple(tools),
    )


# -- writing answers ------------------------------------------------------------------------------------------------


def _pretty(payload: Any) -> bytes:
    # Google front ends pretty-print JSON unless asked not to.
    return orjson.dumps(payload, option=orjson.OPT_INDENT_2)


def _error_payload(status: int, message: str | None = None, details: list[Any] | None = None) -> dict[str, Any]:
    name, default_message = _STATUSES.get(status, ("INTERNAL" if status >= 500 else "FAILED_PRECONDITION", "Error."))
    error: dict[str, Any] = {"code": status, "message": message or default_message, "status": name}
    if details:
        error["details"] = details
    return {"error": error}


def _modality(count: int) -> list[dict[str, Any]]:
    return [{"modality": "TEXT", "tokenCount": count}]


def _parts(answer: Plan) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"text": answer.text}] if answer.text else []
    parts += [{"functionCall": {"name": call.name, "args": call.arguments}} for call in answer.tool_calls]
    return parts


def _response(model: str, seq: int, parts: list[dict[str, Any]], answer: Plan, *, final: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
    usage: dict[str, Any] = {"promptTokenCount": answer.input_tokens}
    if answer.cached_tokens:
        usage["cachedContentTokenCount"] = answer.cached_tokens
    if final:
        candidate["finishReason"] = "STOP"
        usage["candidatesTokenCount"] = answer.output_tokens - answer.reasoning_tokens
        if answer.reasoning_tokens:
            usage["thoughtsTokenCount"] = answer.reasoning_tokens
        usage["totalTokenCount"] = answer.total_tokens
    else:
        # Before the last chunk only the prompt is counted.
        usage["totalTokenCount"] = answer.input_tokens
    usage["promptTokensDetails"] = _modality(answer.input_tokens)
    return {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": f"fakeResponse{seq:06d}",
    }


def _model(name: str, display_name: str, input_limit: int, output_limit: int) -> dict[str, Any]:
    embedding_model = name.startswith("text-embedding")
    return {
        "name": f"models/{name}",
        "version": "001",
        "displayName": display_name,
        "description": f"{display_name} (fake upstream)",
        "inputTokenLimit": input_limit,
        "outputTokenLimit": output_limit,
        "supportedGenerationMethods": ["embedContent"]
        if embedding_model
        else ["generateContent", "countTokens", "createCachedContent"],
    }
