"""The AWS Bedrock runtime wire format: Converse and ConverseStream, InvokeModel and InvokeModelWithResponseStream for
Anthropic models (Messages bodies, the stream's events base64 in ``chunk`` events), AWS's binary event-stream framing,
and ``{"message": …}`` errors named by ``x-amzn-ErrorType``.

Every request must be signed with SigV4 by one of ``AWS_KEYS`` (the signature is checked, over the path as it was
sent) or carry one of ``API_KEYS`` as a bearer token (Bedrock API keys); anything else is answered 403 as AWS does.
"""

from __future__ import annotations

import asyncio
import base64
import re
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from providers.eventstream import CONTENT_TYPE, encode_event, encode_exception

from .script import Plan, ToolSpec, Turn, argument_pieces, plan
from .wire import JSON_KEY, RAW_KEY, SEQ_KEY, EventStream, FakeState, json_response

AWS_KEYS = {
    "AKIAWARDENFAKE000001": "wardenFakeSecretAccessKey0000000000000001",
    "AKIAPROFILEFAKE00002": "profileFakeSecretAccessKey000000000000002",
}
"""Access key id → secret access key: the credentials this fake accepts signatures from."""
API_KEYS = frozenset({"ABSKQmVkcm9ja0FQSUtleS1jbGllbnQtb3duLWtleQ=="})
"""Bedrock API keys this fake accepts as bearer tokens."""

_ERRORS: dict[int, tuple[str, str]] = {
    400: ("ValidationException", "Malformed input request."),
    403: ("AccessDeniedException", "You don't have access to the model with the specified model ID."),
    404: ("ResourceNotFoundException", "Could not resolve the foundation model from the model identifier."),
    408: ("ModelTimeoutException", "Model timed out."),
    429: ("ThrottlingException", "Too many requests, please wait before trying again."),
    500: ("InternalServerException", "The server encountered an internal error."),
    503: ("ServiceUnavailableException", "Bedrock is unable to process your request."),
}
_SIGV4 = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, ?"
    r"SignedHeaders=([^,]+), ?Signature=([0-9a-f]+)"
)


def error_name(status: int) -> tuple[str, str]:
    return _ERRORS.get(status) or (_ERRORS[500] if status >= 500 else _ERRORS[400])


class BedrockFake:
    """Handlers for one fake Bedrock runtime upstream."""

    def __init__(self, state: FakeState) -> None:
        self.state = state

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/model/{model:.+}/converse", self.converse),
            web.post("/model/{model:.+}/converse-stream", self.converse_stream),
            web.post("/model/{model:.+}/invoke", self.invoke),
            web.post("/model/{model:.+}/invoke-with-response-stream", self.invoke_stream),
        ]

    def headers(self, request: web.Request) -> dict[str, str]:
        return {"x-amzn-RequestId": f"00000000-0000-4000-8000-{request[SEQ_KEY]:012d}"}

    def error(self, request: web.Request, status: int, message: str | None = None) -> web.Response:
        name, default_message = error_name(status)
        headers = {
            **self.headers(request),
            "x-amzn-ErrorType": f"{name}:http://internal.amazon.com/coral/com.amazon.bedrock/",
        }
        return json_response({"message": message or default_message}, status=status, headers=headers)

    def not_found(self, request: web.Request) -> web.Response:
        return self.error(request, 404, f"Unknown operation {request.method} {request.path}")

    def authenticate(self, request: web.Request) -> web.Response | None:
        authorization = request.headers.get("Authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer":
            if token.strip() in API_KEYS:
                return None
            return self.error(request, 403, "Invalid API Key format: Must start with pre-defined prefix")
        problem = _signature_problem(request, self.state.region)
        return None if problem is None else self.error(request, 403, problem)

    # -- converse -------------------------------------------------------------------------------------------------

    async def converse(self, request: web.Request) -> web.StreamResponse:
        _, answer, refused = await self._read(request, _converse_invalid)
        if refused is not None:
            return refused
        assert answer is not None
        seq = request[SEQ_KEY]
        content: list[dict[str, Any]] = [{"text": answer.text}] if answer.text else []
        content += [
            {"toolUse": {"toolUseId": _tool_use_id(seq, index), "name": call.name, "input": call.arguments}}
            for index, call in enumerate(answer.tool_calls)
        ]
        payload = {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": _stop_reason(answer),
            "usage": _converse_usage(answer),
            "metrics": {"latencyMs": 42},
        }
        return json_response(payload, headers=self.headers(request))

    async def converse_stream(self, request: web.Request) -> web.StreamResponse:
        _, answer, refused = await self._read(request, _converse_invalid)
        if refused is not None:
            return refused
        assert answer is not None
        seq = request[SEQ_KEY]
        stream = await self._open_stream(request, answer)
        await stream.send(encode_event("messageStart", {"role": "assistant"}))
        index = 0
        if answer.text:
            for piece in answer.text_deltas():
                delta = {"contentBlockIndex": index, "delta": {"text": piece}}
                await stream.send(encode_event("contentBlockDelta", delta), delta=True)
            await stream.send(encode_event("contentBlockStop", {"contentBlockIndex": index}))
            index += 1
        for number, call in enumerate(answer.tool_calls):
            start = {"toolUse": {"toolUseId": _tool_use_id(seq, number), "name": call.name}}
            await stream.send(encode_event("contentBlockStart", {"contentBlockIndex": index, "start": start}))
            for piece in argument_pieces(call.arguments_json):
                delta = {"contentBlockIndex": index, "delta": {"toolUse": {"input": piece}}}
                await stream.send(encode_event("contentBlockDelta", delta), delta=True)
            await stream.send(encode_event("contentBlockStop", {"contentBlockIndex": index}))
            index += 1
        await stream.send(encode_event("messageStop", {"stopReason": _stop_reason(answer)}), final=True)
        metadata = {"usage": _converse_usage(answer), "metrics": {"latencyMs": 42}}
        await stream.send(encode_event("metadata", metadata))
        return await stream.close()

    # -- invoke (Anthropic models) --------------------------------------------------------------------------------

    async def invoke(self, request: web.Request) -> web.StreamResponse:
        _, answer, refused = await self._read(request, _invoke_invalid)
        if refused is not None:
            return refused
        assert answer is not None
        return json_response(_message(request, answer), headers=self.headers(request))

    async def invoke_stream(self, request: web.Request) -> web.StreamResponse:
        _, answer, refused = await self._read(request, _invoke_invalid)
        if refused is not None:
            return refused
        assert answer is not None
        seq = request[SEQ_KEY]

        def chunk(kind: str, **fields: Any) -> bytes:
            event = {"type": kind, **fields}
            return encode_event("chunk", {"bytes": base64.b64encode(orjson.dumps(event)).decode()})

        stream = await self._open_stream(request, answer)
        start = {**_message(request, answer), "content": [], "stop_reason": None}
        start["usage"] = {**start["usage"], "output_tokens": 1}
        await stream.send(chunk("message_start", message=start))
        index = 0
        if answer.text:
            await stream.send(chunk("content_block_start", index=index, content_block={"type": "text", "text": ""}))
            for piece in answer.text_deltas():
                await stream.send(
                    chunk("content_block_delta", index=index, delta={"type": "text_delta", "text": piece}), delta=True
                )
            await stream.send(chunk("content_block_stop", index=index))
            index += 1
        for number, call in enumerate(answer.tool_calls):
            block = {"type": "tool_use", "id": _tool_use_id(seq, number), "name": call.name, "input": {}}
            await stream.send(chunk("content_block_start", index=index, content_block=block))
            for piece in argument_pieces(call.arguments_json):
                delta = {"type": "input_json_delta", "partial_json": piece}
                await stream.send(chunk("content_block_delta", index=index, delta=delta), delta=True)
            await stream.send(chunk("content_block_stop", index=index))
            index += 1
        usage = {"output_tokens": answer.output_tokens}
        stop = {"stop_reason": _stop_reason(answer), "stop_sequence": None}
        await stream.send(chunk("message_delta", delta=stop, usage=usage), final=True)
        metrics = {
            "inputTokenCount": answer.input_tokens,
            "outputTokenCount": answer.output_tokens,
            "invocationLatency": 42,
            "firstByteLatency": 7,
        }
        await stream.send(chunk("message_stop", **{"amazon-bedrock-invocationMetrics": metrics}))
        return await stream.close()

    # -- shared ---------------------------------------------------------------------------------------------------

    async def _open_stream(self, request: web.Request, answer: Plan) -> EventStream:
        """An event stream whose scripted in-stream error is Bedrock's exception message (``throttlingException``…)."""

        def error_event() -> bytes:
            name, message = error_name(answer.stream_error or 500)
            return encode_exception(name[0].lower() + name[1:], message)

        return await EventStream.open(
            request,
            answer,
            self.state,
            headers=self.headers(request),
            content_type=CONTENT_TYPE,
            charset=None,
            error_event=error_event,
        )

    async def _read(self, request: web.Request, invalid: Any) -> tuple[Any, Plan | None, web.Response | None]:
        body = request[JSON_KEY]
        problem = invalid(body)
        if problem:
            return body, None, self.error(request, 400, problem)
        model = unquote(request.match_info["model"])
        answer = plan(_converse_turn(model, body) if invalid is _converse_invalid else _invoke_turn(model, body))
        if answer.slow:
            await asyncio.sleep(answer.slow)
        if answer.error_status:
            return body, None, self.error(request, answer.error_status)
        return body, answer, None


def _signature_problem(request: web.Request, endpoint_region: str | None = None) -> str | None:
    """Why the request's SigV4 signature is not one of ``AWS_KEYS``' over what was received, for this endpoint's
    region when it has one (None: it is)."""
    found = _SIGV4.fullmatch(request.headers.get("Authorization", "").strip())
    if found is None:
        return "Missing Authentication Token"
    key_id, _, region, service, signed, signature = found.groups()
    if endpoint_region is not None and region != endpoint_region:
        return f"Credential should be scoped to a valid region, not '{region}'. Expected '{endpoint_region}'."
    secret = AWS_KEYS.get(key_id)
    if secret is None:
        return "The security token included in the request is invalid."
    names = signed.split(";")
    headers = {name: request.headers.get(name, "") for name in names}
    url = f"{request.scheme}://{request.host}{request.raw_path}"
    signed_request = AWSRequest(method=request.method, url=url, data=request[RAW_KEY], headers=headers)
    signed_request.context["timestamp"] = request.headers.get("X-Amz-Date", "")
    auth = SigV4Auth(Credentials(key_id, secret, request.headers.get("X-Amz-Security-Token")), service, region)
    canonical = auth.canonical_request(signed_request)
    expected = auth.signature(auth.string_to_sign(signed_request, canonical), signed_request)
    if expected != signature:
        return "The request signature we calculated does not match the signature you provided."
    return None


def _converse_invalid(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "Malformed input request, please reformat your input and try again."
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "A conversation must start with a user message."
    return None


def _invoke_invalid(body: Any) -> str | None:
    retry = ", please reformat your input and try again."
    if not isinstance(body, dict):
        return "Malformed input request, please reformat your input and try again."
    if body.get("anthropic_version") != "bedrock-2023-05-31":
        return "Malformed input request: #: required key [anthropic_version] not found" + retry
    if "max_tokens" not in body:
        return (
            "Malformed input request: #: required key [max_tokens] not found, please reformat your input and try again."
        )
    if "model" in body:
        return "Malformed input request: #: extraneous key [model] is not permitted" + retry
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        return "Malformed input request: #/messages: expected minimum item count: 1" + retry
    return None


def _text(blocks: Any) -> str:
    if isinstance(blocks, str):
        return blocks
    texts = []
    for block in blocks if isinstance(blocks, list) else []:
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        for key in ("toolResult", "tool_result"):
            if isinstance(block.get(key), dict):
                texts.append(_text(block[key].get("content")))
        if block.get("type") == "tool_result":
            texts.append(_text(block.get("content")))
    return "\n".join(text for text in texts if text)


def _is_tool_result(blocks: Any) -> bool:
    return isinstance(blocks, list) and any(
        isinstance(block, dict) and ("toolResult" in block or block.get("type") == "tool_result") for block in blocks
    )


def _converse_turn(model: str, body: dict[str, Any]) -> Turn:
    messages = [message for message in body["messages"] if isinstance(message, dict)]
    last = messages[-1].get("content") if messages else []
    tools = [
        ToolSpec(name=str(spec.get("name", "")), parameters=(spec.get("inputSchema") or {}).get("json") or {})
        for spec in (tool.get("toolSpec") for tool in (body.get("toolConfig") or {}).get("tools") or [])
        if isinstance(spec, dict)
    ]
    texts = [_text(body.get("system") or [])] + [_text(message.get("content")) for message in messages]
    return Turn(
        model=model,
        prompt=_text(last),
        prompt_is_tool_result=_is_tool_result(last),
        input_texts=tuple(texts),
        tools=tuple(tools),
    )


def _invoke_turn(model: str, body: dict[str, Any]) -> Turn:
    messages = [message for message in body["messages"] if isinstance(message, dict)]
    last = messages[-1].get("content") if messages else []
    tools = [
        ToolSpec(name=str(tool.get("name", "")), parameters=tool.get("input_schema") or {})
        for tool in body.get("tools") or []
        if isinstance(tool, dict)
    ]
    texts = [_text(body.get("system") or "")] + [_text(message.get("content")) for message in messages]
    return Turn(
        model=model,
        prompt=_text(last),
        prompt_is_tool_result=_is_tool_result(last),
        input_texts=tuple(texts),
        tools=tuple(tools),
    )


def _tool_use_id(seq: int, index: int) -> str:
    return f"tooluse_{seq:06d}_{index}"


def _stop_reason(answer: Plan) -> str:
    return "tool_use" if answer.tool_calls else "end_turn"


def _converse_usage(answer: Plan) -> dict[str, int]:
    return {
        "inputTokens": answer.uncached_input_tokens,
        "outputTokens": answer.output_tokens,
        "totalTokens": answer.total_tokens,
        "cacheReadInputTokens": answer.cached_tokens,
        "cacheWriteInputTokens": answer.cache_write_tokens,
    }


def _message(request: web.Request, answer: Plan) -> dict[str, Any]:
    seq = request[SEQ_KEY]
    content: list[dict[str, Any]] = [{"type": "text", "text": answer.text}] if answer.text else []
    content += [
        {"type": "tool_use", "id": _tool_use_id(seq, index), "name": call.name, "input": call.arguments}
        for index, call in enumerate(answer.tool_calls)
    ]
    return {
        "id": f"msg_bdrk_{seq:06d}",
        "type": "message",
        "role": "assistant",
        "model": unquote(request.match_info["model"]),
        "content": content,
        "stop_reason": _stop_reason(answer),
        "stop_sequence": None,
        "usage": {
            "input_tokens": answer.uncached_input_tokens,
            "cache_creation_input_tokens": answer.cache_write_tokens,
            "cache_read_input_tokens": answer.cached_tokens,
            "output_tokens": answer.output_tokens,
        },
    }
