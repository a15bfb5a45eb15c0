"""The OpenAI wire format: chat completions (with SSE chunks), legacy text completions, Responses (with its typed SSE
events), embeddings and the models list, with OpenAI's headers and `{"error": {...}}` envelope."""

from __future__ import annotations

import asyncio
import base64
import struct
from typing import Any

from aiohttp import web

from .script import Plan, ToolSpec, Turn, argument_pieces, embedding, plan, word_count
from .wire import (
    EPOCH,
    JSON_KEY,
    SEQ_KEY,
    EventStream,
    FakeState,
    json_response,
    obfuscation,
    sse,
    text_of,
    truncated_json,
)

FINGERPRINT = "fp_fake0001"
MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "o3-mini", "text-embedding-3-small")
EMBEDDING_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
DEFAULT_EMBEDDING_DIMENSIONS = 256
RATE_LIMIT_TOKENS = 30_000_000

_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("invalid_request_error", "Invalid request.", None),
    401: ("invalid_request_error", "Incorrect API key provided.", "invalid_api_key"),
    403: ("invalid_request_error", "You are not allowed to sample from this model.", None),
    404: ("invalid_request_error", "The requested resource does not exist.", None),
    409: ("invalid_request_error", "The request conflicts with another request.", None),
    422: ("invalid_request_error", "The request could not be processed.", None),
    429: ("requests", "Rate limit reached for requests. Please try again in 1s.", "rate_limit_exceeded"),
    500: ("server_error", "The server had an error while processing your request. Sorry about that!", None),
    503: ("server_error", "The engine is currently overloaded, please try again later.", None),
}
_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth "
    "(i.e. Authorization: Bearer YOUR_KEY)."
)


class OpenAIFake:
    """Handlers for one fake OpenAI upstream."""

    def __init__(self, state: FakeState) -> None:
        self.state = state

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/chat/completions", self.chat_completions),
            web.post("/v1/completions", self.completions),
            web.post("/v1/responses", self.responses),
            web.post("/v1/embeddings", self.embeddings),
            web.get("/v1/models", self.models),
            web.get("/v1/models/{model}", self.model),
        ]

    # -- envelope -------------------------------------------------------------------------------------------------

    def headers(self, request: web.Request, input_tokens: int = 0) -> dict[str, str]:
        seq = request[SEQ_KEY]
        return {
            "x-request-id": f"req_{seq:032x}",
            "openai-organization": "fake-org",
            "openai-processing-ms": "1",
            "openai-version": "2020-10-01",
            "x-ratelimit-limit-requests": "10000",
            "x-ratelimit-limit-tokens": str(RATE_LIMIT_TOKENS),
            "x-ratelimit-remaining-requests": "9999",
            "x-ratelimit-remaining-tokens": str(RATE_LIMIT_TOKENS - input_tokens),
            "x-ratelimit-reset-requests": "6ms",
            "x-ratelimit-reset-tokens": "0s",
        }

    def error(self, request: web.Request, status: int, message: str | None = None) -> web.Response:
        kind, default_message, code = _ERRORS.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", "Error.", None)
        )
        payload = {"error": {"message": message or default_message, "type": kind, "param": None, "code": code}}
        return json_response(payload, status=status, headers=self.headers(request))

    def not_found(self, request: web.Request) -> web.Response:
        return self.error(request, 404, f"Invalid URL ({request.method} {request.path})")

    def authenticate(self, request: web.Request) -> web.Response | None:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return self.error(request, 401, _NO_KEY)
        accepted = self.state.accepted_keys
        if accepted is not None and key.strip() not in accepted:
            return self.error(request, 401, "Incorrect API key provided.")
        return None

    # -- chat completions -----------------------------------------------------------------------------------------

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = request[JSON_KEY]
        if not isinstance(body, dict) or not body.get("model"):
            return self.error(request, 400, "you must provide a model parameter")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return self.error(request, 400, "[] is too short - 'messages'")
        answer = plan(_chat_turn(body))
        if answer.slow:
            await asyncio.sleep(answer.slow)
        if answer.error_status:
            return self.error(request, answer.error_status)
        headers = self.headers(request, answer.input_tokens)
        if body.get("stream"):
            return await self._chat_stream(request, body, answer, headers)
        payload = self.annotate_completion(self._chat_completion(request[SEQ_KEY], body["model"], answer))
        if answer.stream_fail:
            return await truncated_json(request, payload, headers)
        return json_response(payload, headers=headers)

    def _chat_completion(self, seq: int, model: str, answer: Plan) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if answer.refusal else answer.text or None,
            "refusal": answer.text if answer.refusal else None,
            "annotations": [],
        }
        if answer.tool_calls:
            message["tool_calls"] = [
                {
                    "id": _call_id(seq, index),
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_json},
                }
                for index, call in enumerate(answer.tool_calls)
            ]
        return {
            "id": f"chatcmpl-{seq:06d}",
            "object": "chat.completion",
            "created": EPOCH + seq,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "tool_calls" if answer.tool_calls else "stop",
                }
            ],
            "usage": _chat_usage(answer),
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
        }

    async def _chat_stream(
        self, request: web.Request, body: dict[str, Any], answer: Plan, headers: dict[str, str]
    ) -> web.StreamResponse:
        seq = request[SEQ_KEY]
        options = body.get("stream_options") or {}
        include_usage = options.get("include_usage") is True
        include_obfuscation = options.get("include_obfuscation") is not False
        counter = iter(range(1 << 30))

        def chunk(delta: dict[str, Any] | None, finish: str | None = None) -> bytes:
            payload: dict[str, Any] = {
                "id": f"chatcmpl-{seq:06d}",
                "object": "chat.completion.chunk",
                "created": EPOCH + seq,
                "model": body["model"],
                "service_tier": "default",
                "system_fingerprint": FINGERPRINT,
                "choices": []
                if delta is None
                else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            if include_usage:
                # With include_usage every chunk has a usage field, null except on the last (choice-less) one.
                payload["usage"] = _chat_usage(answer) if delta is None else None
            if include_obfuscation:
                payload["obfuscation"] = obfuscation(seq, next(counter))
            return sse(self.annotate_chunk(payload))

        def error_event() -> bytes:
            status = answer.stream_error or 500
            kind, message, code = _ERRORS.get(status, ("server_error", "Error.", None))
            return sse({"error": {"message": message, "type": kind, "param": None, "code": code}})

        stream = await EventStream.open(request, answer, self.state, headers=headers, error_event=error_event)
        for event in self.stream_preamble():
            await stream.send(event)
        if answer.refusal:  # as OpenAI streams one: no content, the refusal in deltas of its own
            await stream.send(chunk({"role": "assistant", "content": None, "refusal": ""}))
        else:
            await stream.send(chunk({"role": "assistant", "content": "" if answer.text else None, "refusal": None}))
        field = "refusal" if answer.refusal else "content"
        for piece in answer.text_deltas():
            await stream.send(chunk({field: piece}), delta=True)
        for index, call in enumerate(answer.tool_calls):
            opening = {"index": index, "id": _call_id(seq, index), "type": "function"}
            opening["function"] = {"name": call.name, "arguments": ""}
            await stream.send(chunk({"tool_calls": [opening]}))
            for piece in argument_pieces(call.arguments_json):
                delta = {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                await stream.send(chunk(delta), delta=True)
        await stream.send(chunk({}, "tool_calls" if answer.tool_calls else "stop"), final=True)
        if include_usage:
            await stream.send(chunk(None))
        await stream.send(b"data: [DONE]\n\n")
        return await stream.close()

    # -- legacy completions ---------------------------------------------------------------------------------------

    async def completions(self, request: web.Request) -> web.StreamResponse:
        """The legacy text completions API (``gpt-3.5-turbo-instruct``, and most OpenAI-compatible servers): a
        ``prompt`` (a string or a list of them) in, a choice's ``text`` out; streamed as chunks of choices' text."""
        body = request[JSON_KEY]
        if not isinstance(body, dict) or not body.get("model"):
            return self.error(request, 400, "you must provide a model parameter")
        prompt = body.get("prompt")
        prompts = [prompt] if isinstance(prompt, str) else [p for p in prompt or [] if isinstance(p, str)]
        if not prompts:
            return self.error(request, 400, "'prompt' is a required property")
        answer = plan(Turn(model=str(body["model"]), prompt=prompts[-1], input_texts=tuple(prompts)))
        if answer.error_status:
            return self.error(request, answer.error_status)
        headers = self.headers(request, answer.input_tokens)
        seq = request[SEQ_KEY]

        def completion(text: str, finish: str | None) -> dict[str, Any]:
            return {
                "id": f"cmpl-{seq:06d}",
                "object": "text_completion",
                "created": EPOCH + seq,
                "model": body["model"],
                "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}],
            }

        usage = {k: v for k, v in _chat_usage(answer).items() if k.endswith("_tokens")}
        if not body.get("stream"):
            return json_response({**completion(answer.text, "stop"), "usage": usage}, headers=headers)
        stream = await EventStream.open(request, answer, self.state, headers=headers)
        for piece in answer.text_deltas():
            await stream.send(sse(completion(piece, None)), delta=True)
        await stream.send(sse(completion("", "stop")), final=True)
        if (body.get("stream_options") or {}).get("include_usage") is True:
            await stream.send(sse({**completion("", None), "choices": [], "usage": usage}))
        await stream.send(b"data: [DONE]\n\n")
        return await stream.close()

    # What a provider serving OpenAI's bodies adds to them (Azure's content-filter results): nothing, here.

    def annotate_completion(self, payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    def annotate_chunk(self, payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    def stream_preamble(self) -> list[bytes]:
        """Events sent before a chat stream's first chunk."""
        return []

    # -- responses ------------------------------------------------------------------------------------------------

    async def responses(self, request: web.Request) -> web.StreamResponse:
        body = request[JSON_KEY]
        if not isinstance(body, dict) or not body.get("model"):
            return self.error(request, 400, "Missing required parameter: 'model'.")
        answer = plan(_responses_turn(body))
        if answer.slow:
            await asyncio.sleep(answer.slow)
        if answer.error_status:
            return self.error(request, answer.error_status)
        headers = self.headers(request, answer.input_tokens)
        if body.get("stream"):
            return await self._responses_stream(request, body, answer, headers)
        seq = request[SEQ_KEY]
        payload = _response(body, seq, "completed", _output_items(seq, answer), _responses_usage(answer))
        if answer.stream_fail:
            return await truncated_json(request, payload, headers)
        return json_response(payload, headers=headers)

    async def _responses_stream(
        self, request: web.Request, body: dict[str, Any], answer: Plan, headers: dict[str, str]
    ) -> web.StreamResponse:
        seq = request[SEQ_KEY]
        numbers = iter(range(1 << 30))
        include_obfuscation = (body.get("stream_options") or {}).get("include_obfuscation") is not False

        def event(kind: str, **fields: Any) -> bytes:
            return sse({"type": kind, "sequence_number": next(numbers), **fields}, event=kind)

        def delta_event(kind: str, index: int, **fields: Any) -> bytes:
            if include_obfuscation:
                fields["obfuscation"] = obfuscation(seq, index)
            return event(kind, **fields)

        def error_event() -> bytes:
            status = answer.stream_error or 500
            _, message, code = _ERRORS.get(status, ("server_error", "Error.", None))
            return event("error", code=code or "server_error", message=message, param=None)

        stream = await EventStream.open(request, answer, self.state, headers=headers, error_event=error_event)
        started = _response(body, seq, "in_progress", [], None)
        await stream.send(event("response.created", response=started))
        await stream.send(event("response.in_progress", response=started))
        items = _output_items(seq, answer)
        deltas = 0
        for output_index, item in enumerate(items):
            if item["type"] == "message" and answer.refusal:
                part = item["content"][0]
                located = {"item_id": item["id"], "output_index": output_index, "content_index": 0}
                added = {**item, "status": "in_progress", "content": []}
                await stream.send(event("response.output_item.added", output_index=output_index, item=added))
                await stream.send(event("response.content_part.added", **located, part={**part, "refusal": ""}))
                for piece in answer.text_deltas():
                    deltas += 1
                    await stream.send(delta_event("response.refusal.delta", deltas, **located, delta=piece), delta=True)
                await stream.send(event("response.refusal.done", **located, refusal=part["refusal"]))
                await stream.send(event("response.content_part.done", **located, part=part))
            elif item["type"] == "message":
                part = item["content"][0]
                empty_part = {**part, "text": ""}
                located = {"item_id": item["id"], "output_index": output_index, "content_index": 0}
                added = {**item, "status": "in_progress", "content": []}
                await stream.send(event("response.output_item.added", output_index=output_index, item=added))
                await stream.send(event("response.content_part.added", **located, part=empty_part))
                for piece in answer.text_deltas():
                    deltas += 1
                    message_delta = delta_event(
                        "response.output_text.delta", deltas, **located, delta=piece, logprobs=[]
                    )
                    await stream.send(message_delta, delta=True)
                text_done = event("response.output_text.done", **located, text=part["text"], logprobs=[])
                await stream.send(text_done)
                await stream.send(event("response.content_part.done", **located, part=part))
            else:
                added = {**item, "status": "in_progress", "arguments": ""}
                await stream.send(event("response.output_item.added", output_index=output_index, item=added))
                for piece in argument_pieces(item["arguments"]):
                    deltas += 1
                    arguments_delta = delta_event(
                        "response.function_call_arguments.delta",
                        deltas,
                        item_id=item["id"],
                        output_index=output_index,
                        delta=piece,
                    )
                    await stream.send(arguments_delta, delta=True)
                arguments_done = event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=output_index,
                    arguments=item["arguments"],
                )
                await stream.send(arguments_done)
            await stream.send(event("response.output_item.done", output_index=output_index, item=item))
        completed = _response(body, seq, "completed", items, _responses_usage(answer))
        await stream.send(event("response.completed", response=completed), final=True)
        return await stream.close()

    # -- embeddings and models ------------------------------------------------------------------------------------

    async def embeddings(self, request: web.Request) -> web.Response:
        body = request[JSON_KEY]
        if not isinstance(body, dict) or not body.get("model"):
            return self.error(request, 400, "you must provide a model parameter")
        texts = _embedding_inputs(body.get("input"))
        if not texts:
            return self.error(request, 400, "'input' : input must be a non-empty string or array")
        model = body["model"]
        dimensions = body.get("dimensions") or EMBEDDING_DIMENSIONS.get(model, DEFAULT_EMBEDDING_DIMENSIONS)
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, text in enumerate(texts):
            vector = embedding(text, int(dimensions))
            encoded: Any = vector
            if as_base64:
                encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(word_count(text) for text in texts)
        payload = {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return json_response(payload, headers=self.headers(request, tokens))

    async def models(self, request: web.Request) -> web.Response:
        payload = {"object": "list", "data": [_model(name) for name in MODELS]}
        return json_response(payload, headers=self.headers(request))

    async def model(self, request: web.Request) -> web.Response:
        return json_response(_model(request.match_info["model"]), headers=self.headers(request))


# -- reading requests -----------------------------------------------------------------------------------------------


def _chat_turn(body: dict[str, Any]) -> Turn:
    messages = [message for message in body["messages"] if isinstance(message, dict)]
    texts = tuple(text_of(message.get("content")) for message in messages)
    last = messages[-1] if messages else {}
    tools = [
        ToolSpec(name=str(function.get("name", "")), parameters=function.get("parameters") or {})
        for tool in body.get("tools") or []
        if isinstance(tool, dict) and isinstance(function := tool.get("function"), dict)
    ]
    # The pre-tools `functions` parameter is still accepted by the API.
    tools += [
        ToolSpec(name=str(function.get("name", "")), parameters=function.get("parameters") or {})
        for function in body.get("functions") or []
        if isinstance(function, dict)
    ]
    return Turn(
        model=str(body.get("model", "")),
        prompt=text_of(last.get("content")),
        prompt_is_tool_result=last.get("role") in ("tool", "function"),
        input_texts=texts,
        tools=tuple(tools),
    )


def _responses_turn(body: dict[str, Any]) -> Turn:
    raw = body.get("input")
    items: list[Any] = [{"role": "user", "content": raw}] if isinstance(raw, str) else list(raw or [])
    texts: list[str] = [body["instructions"]] if isinstance(body.get("instructions"), str) else []
    prompt, is_tool_result = "", False
    for item in items:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "function_call_output":
            prompt, is_tool_result = text_of(item.get("output")), True
        elif item.get("type") == "function_call":
            continue
        elif "content" in item:
            prompt, is_tool_result = text_of(item.get("content")), False
        else:
            continue
        texts.append(prompt)
    tools = [
        ToolSpec(name=str(tool.get("name", "")), parameters=tool.get("parameters") or {})
        for tool in body.get("tools") or []
        if isinstance(tool, dict) and tool.get("type") == "function"
    ]
    return Turn(
        model=str(body.get("model", "")),
        prompt=prompt,
        prompt_is_tool_result=is_tool_result,
        input_texts=tuple(texts),
        tools=tuple(tools),
    )


def _embedding_inputs(raw: Any) -> list[str]:
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw and all(isinstance(token, int) for token in raw):
        return [" ".join(map(str, raw))]  # one pre-tokenised input
    if isinstance(raw, list):
        return [item if isinstance(item, str) else " ".join(map(str, item)) for item in raw]
    return []


# -- writing answers ------------------------------------------------------------------------------------------------


def _call_id(seq: int, index: int) -> str:
    return f"call_{seq:06d}_{index}"


def _chat_usage(answer: Plan) -> dict[str, Any]:
    return {
        "prompt_tokens": answer.input_tokens,
        "completion_tokens": answer.output_tokens,
        "total_tokens": answer.total_tokens,
        "prompt_tokens_details": {"cached_tokens": answer.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": answer.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _responses_usage(answer: Plan) -> dict[str, Any]:
    return {
        "input_tokens": answer.input_tokens,
        "input_tokens_details": {"cached_tokens": answer.cached_tokens},
        "output_tokens": answer.output_tokens,
        "output_tokens_details": {"reasoning_tokens": answer.reasoning_tokens},
        "total_tokens": answer.total_tokens,
    }


def _output_items(seq: int, answer: Plan) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if answer.text:
        part: dict[str, Any] = (
            {"type": "refusal", "refusal": answer.text}
            if answer.refusal
            else {"type": "output_text", "annotations": [], "logprobs": [], "text": answer.text}
        )
        items.append(
            {"id": f"msg_{seq:06d}", "type": "message", "status": "completed", "content": [part], "role": "assistant"}
        )
    for index, call in enumerate(answer.tool_calls):
        items.append(
            {
                "id": f"fc_{seq:06d}_{index}",
                "type": "function_call",
                "status": "completed",
                "arguments": call.arguments_json,
                "call_id": _call_id(seq, index),
                "name": call.name,
            }
        )
    return items


def _response(
    body: dict[str, Any], seq: int, status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "id": f"resp_{seq:06d}",
        "object": "response",
        "created_at": EPOCH + seq,
        "status": status,
        "background": False,
        "completed_at": EPOCH + seq if status == "completed" else None,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "model": body["model"],
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": usage,
        "user": None,
        "metadata": body.get("metadata") or {},
    }


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": EPOCH, "owned_by": "system"}
