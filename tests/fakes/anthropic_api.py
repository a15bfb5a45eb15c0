"""The Anthropic wire format: Messages (with its named SSE events, tool_use and input_json_delta), token counting and
the models list, with Anthropic's headers and `{"type": "error", ...}` envelope."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from .script import Plan, ToolSpec, Turn, argument_pieces, plan
from .wire import JSON_KEY, SEQ_KEY, EventStream, FakeState, json_response, sse, truncated_json

ORGANIZATION_ID = "00000000-0000-4000-8000-000000000000"
RESET_AT = "2025-06-15T12:00:00Z"
LIMITS = {"requests": 4000, "input-tokens": 400_000, "output-tokens": 80_000, "tokens": 480_000}
MODELS = (
    ("claude-opus-4-6", "Claude Opus 4.6", "2026-02-05T00:00:00Z"),
    ("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17T00:00:00Z"),
    ("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-15T00:00:00Z"),
)

_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "Not found"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}
STREAM_ERROR_STATUS = 529


class AnthropicFake:
    """Handlers for one fake Anthropic upstream."""

    def __init__(self, state: FakeState) -> None:
        self.state = state

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/messages", self.messages),
            web.post("/v1/messages/count_tokens", self.count_tokens),
            web.get("/v1/models", self.models),
            web.get("/v1/models/{model}", self.model),
        ]

    # -- envelope -------------------------------------------------------------------------------------------------

    def headers(self, request: web.Request, answer: Plan | None = None) -> dict[str, str]:
        used = {
            "requests": 1,
            "input-tokens": answer.input_tokens if answer else 0,
            "output-tokens": answer.output_tokens if answer else 0,
            "tokens": answer.total_tokens if answer else 0,
        }
        headers = {"request-id": _request_id(request), "anthropic-organization-id": ORGANIZATION_ID}
        for name, limit in LIMITS.items():
            headers[f"anthropic-ratelimit-{name}-limit"] = str(limit)
            headers[f"anthropic-ratelimit-{name}-remaining"] = str(limit - used[name])
            headers[f"anthropic-ratelimit-{name}-reset"] = RESET_AT
        return headers

    def error(self, request: web.Request, status: int, message: str | None = None) -> web.Response:
        kind, default_message = _error_kind(status)
        payload = {
            "type": "error",
            "error": {"type": kind, "message": message or default_message},
            "request_id": _request_id(request),
        }
        headers = self.headers(request)
        if status == 429:
            headers["retry-after"] = "1"
        return json_response(payload, status=status, headers=headers)

    def not_found(self, request: web.Request) -> web.Response:
        return self.error(request, 404, "Not Found")

    def authenticate(self, request: web.Request) -> web.Response | None:
        key = request.headers.get("x-api-key", "").strip()
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if not key and scheme.lower() == "bearer":
            key = token.strip()  # OAuth-style bearer tokens are accepted too
        if not key:
            return self.error(request, 401, "x-api-key header is required")
        accepted = self.state.accepted_keys
        if accepted is not None and key not in accepted:
            return self.error(request, 401, "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return self.error(request, 400, "anthropic-version: header is required")
        return None

    # -- messages -------------------------------------------------------------------------------------------------

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = request[JSON_KEY]
        problem = _invalid(body, need_max_tokens=True)
        if problem:
            return self.error(request, 400, problem)
        answer = plan(_turn(body))
        if answer.slow:
            await asyncio.sleep(answer.slow)
        if answer.error_status:
            return self.error(request, answer.error_status)
        headers = self.headers(request, answer)
        if body.get("stream"):
            return await self._stream(request, body, answer, headers)
        payload = _message(request[SEQ_KEY], body["model"], answer)
        if answer.stream_fail:
            return await truncated_json(request, payload, headers)
        return json_response(payload, headers=headers)

    async def _stream(
        self, request: web.Request, body: dict[str, Any], answer: Plan, headers: dict[str, str]
    ) -> web.StreamResponse:
        seq = request[SEQ_KEY]

        def event(kind: str, **fields: Any) -> bytes:
            return sse({"type": kind, **fields}, event=kind)

        def error_event() -> bytes:
            kind, message = _error_kind(answer.stream_error or STREAM_ERROR_STATUS)
            return event("error", error={"type": kind, "message": message})

        stream = await EventStream.open(request, answer, self.state, headers=headers, error_event=error_event)
        start = {**_message(seq, body["model"], answer), "content": [], "stop_reason": None}
        start["usage"] = {**start["usage"], "output_tokens": 1}
        await stream.send(event("message_start", message=start))
        index = 0
        if answer.text:
            await stream.send(event("content_block_start", index=index, content_block={"type": "text", "text": ""}))
            await stream.send(sse(b'{"type": "ping"}', event="ping"))
            for piece in answer.text_deltas():
                text_delta = {"type": "text_delta", "text": piece}
                await stream.send(event("content_block_delta", index=index, delta=text_delta), delta=True)
            await stream.send(event("content_block_stop", index=index))
            index += 1
        for number, call in enumerate(answer.tool_calls):
            block = {"type": "tool_use", "id": _tool_use_id(seq, number), "name": call.name, "input": {}}
            await stream.send(event("content_block_start", index=index, content_block=block))
            if index == 0:
                await stream.send(sse(b'{"type": "ping"}', event="ping"))
            # The API opens every tool input with an empty partial_json before the pieces.
            for piece in ["", *argument_pieces(call.arguments_json)]:
                json_delta = {"type": "input_json_delta", "partial_json": piece}
                await stream.send(event("content_block_delta", index=index, delta=json_delta), delta=bool(piece))
            await stream.send(event("content_block_stop", index=index))
            index += 1
        stop = {"stop_reason": _stop_reason(answer), "stop_sequence": None}
        await stream.send(event("message_delta", delta=stop, usage=_usage(answer)), final=True)
        await stream.send(event("message_stop"))
        return await stream.close()

    async def count_tokens(self, request: web.Request) -> web.Response:
        body = request[JSON_KEY]
        problem = _invalid(body, need_max_tokens=False)
        if problem:
            return self.error(request, 400, problem)
        return json_response({"input_tokens": plan(_turn(body)).input_tokens}, headers=self.headers(request))

    # -- models ---------------------------------------------------------------------------------------------------

    async def models(self, request: web.Request) -> web.Response:
        data = [_model(*entry) for entry in MODELS]
        payload = {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
        return json_response(payload, headers=self.headers(request))

    async def model(self, request: web.Request) -> web.Response:
        wanted = request.match_info["model"]
        for entry in MODELS:
            if entry[0] == wanted:
                return json_response(_model(*entry), headers=self.headers(request))
        return self.error(request, 404, f"model: {wanted}")


# -- reading requests -----------------------------------------------------------------------------------------------


def _invalid(body: Any, *, need_max_tokens: bool) -> str | None:
    if not isinstance(body, dict):
        return "The request body is not valid JSON."
    if not body.get("model"):
        return "model: Field required"
    if need_max_tokens and "max_tokens" not in body:
        return "max_tokens: Field required"
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        return "messages: Field required"
    return None


def _block_text(block: Any) -> str:
    if isinstance(block, str):
        return block
    if not isinstance(block, dict):
        return ""
    if block.get("type") == "tool_result":
        return _content_text(block.get("content"))
    return block.get("text", "") if isinstance(block.get("text"), str) else ""


def _content_text(content: Any) -> str:
    if isinstance(content, list):
        return "\n".join(text for text in map(_block_text, content) if text)
    return _block_text(content)


def _turn(body: dict[str, Any]) -> Turn:
    messages = [message for message in body["messages"] if isinstance(message, dict)]
    texts = [_content_text(body.get("system"))] + [_content_text(message.get("content")) for message in messages]
    last = messages[-1].get("content") if messages else ""
    is_tool_result = isinstance(last, list) and any(
        isinstance(block, dict) and block.get("type") == "tool_result" for block in last
    )
    tools = [
        ToolSpec(name=str(tool.get("name", "")), parameters=tool.get("input_schema") or {})
        for tool in body.get("tools") or []
        if isinstance(tool, dict) and tool.get("type") in (None, "custom")
    ]
    return Turn(
        model=str(body.get("model", "")),
        prompt=_content_text(last),
        prompt_is_tool_result=is_tool_result,
        input_texts=tuple(texts),
        tools=tuple(tools),
    )


# -- writing answers ------------------------------------------------------------------------------------------------


def _request_id(request: web.Request) -> str:
    return f"req_{request[SEQ_KEY]:024d}"


def _tool_use_id(seq: int, index: int) -> str:
    return f"toolu_{seq:06d}_{index}"


def _error_kind(status: int) -> tuple[str, str]:
    if status in _ERRORS:
        return _ERRORS[status]
    return _ERRORS[500] if status >= 500 else _ERRORS[400]


def _stop_reason(answer: Plan) -> str:
    return "tool_use" if answer.tool_calls else "end_turn"


def _usage(answer: Plan) -> dict[str, Any]:
    return {
        "input_tokens": answer.uncached_input_tokens,
        "cache_creation_input_tokens": answer.cache_write_tokens,
        "cache_read_input_tokens": answer.cached_tokens,
        "output_tokens": answer.output_tokens,
    }


def _message(seq: int, model: str, answer: Plan) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": answer.text}] if answer.text else []
    content += [
        {"type": "tool_use", "id": _tool_use_id(seq, index), "name": call.name, "input": call.arguments}
        for index, call in enumerate(answer.tool_calls)
    ]
    return {
        "id": f"msg_{seq:06d}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _stop_reason(answer),
        "stop_sequence": None,
        "usage": {**_usage(answer), "service_tier": "standard"},
    }


def _model(model_id: str, display_name: str, created_at: str) -> dict[str, Any]:
    return {
        "type": "model",
        "id": model_id,
        "display_name": display_name,
        "created_at": created_at,
        "lifecycle": "active",
    }
