"""AWS Bedrock's runtime API, dispatched by route: the Converse API (``/model/{modelId}/converse``,
``…/converse-stream``) and InvokeModel for Anthropic models (``…/invoke``, ``…/invoke-with-response-stream``), whose
body is Anthropic's Messages with ``anthropic_version: bedrock-2023-05-31`` and the model in the path.

Streams use AWS's binary event stream (``providers.eventstream``); InvokeModel's stream carries each of Anthropic's
events base64-encoded in the ``bytes`` of a ``chunk`` event. Errors are ``{"message": …}`` with the error's name in
the ``x-amzn-ErrorType`` header. Model ids may be URL-encoded in the path (ARNs, inference profiles).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping
from enum import Enum
from typing import Any
from urllib.parse import unquote

import orjson

from providers import bedrock_converse as converse
from providers.anthropic import AnthropicAdapter, HeldMessagesStream
from providers.base import ProviderAdapter, RequestMeta
from providers.common import as_dict, as_str
from providers.eventstream import (
    CONTENT_TYPE,
    as_text,
    encode_event,
    encode_exception,
    json_payload,
    read_messages,
    split_messages,
)
from providers.held_stream import HeldStream
from providers.sse import encode_event as encode_sse
from providers.sse import iter_events
from schemas.view import CompletionView, ConversationView

INVOKE_WIRE_FORMAT = "Bedrock InvokeModel (Anthropic messages)"
_MODEL_PREFIX = "/model/"
_ERROR_TYPES = {
    400: "ValidationException",
    401: "UnrecognizedClientException",
    402: "ServiceQuotaExceededException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    413: "ValidationException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    503: "ServiceUnavailableException",
    504: "ModelTimeoutException",
}
_ANTHROPIC = AnthropicAdapter()


class Api(Enum):
    CONVERSE = "converse"
    CONVERSE_STREAM = "converse-stream"
    INVOKE = "invoke"
    INVOKE_STREAM = "invoke-with-response-stream"
    OTHER = "other"


def split_route(route: str) -> tuple[str, Api]:
    """``/model/{modelId}/{action}`` → the model id (decoded) and the API; the id may itself hold a ``/`` (an ARN),
    so the action is the last segment."""
    if not route.startswith(_MODEL_PREFIX):
        return "", Api.OTHER
    model, _, action = route[len(_MODEL_PREFIX) :].rstrip("/").rpartition("/")
    try:
        api = Api(action)
    except ValueError:
        api = Api.OTHER
    return unquote(model), api


def error_type(status: int) -> str:
    return _ERROR_TYPES.get(status, "InternalServerException" if status >= 500 else "ValidationException")


def _chunk_bytes(payload: bytes) -> bytes | None:
    """What a ``chunk``'s ``bytes`` carry (Anthropic's event, JSON), None when they are not base64."""
    try:
        return base64.b64decode(as_str(json_payload(payload).get("bytes")), validate=True)
    except (binascii.Error, ValueError):
        return None


def _chunks(stream: bytes) -> Iterator[tuple[dict[str, Any], Any]]:
    """``(headers, Anthropic event)`` of each message of an InvokeModel stream: a ``chunk``'s decoded ``bytes`` (in
    a recorded stream, the event itself), or None for any other message (an exception)."""
    for headers, payload in read_messages(stream):
        event: Any = None
        if headers.get(":event-type") == "chunk":
            found = json_payload(payload)
            inner = _chunk_bytes(payload) if "bytes" in found else None
            event = json_payload(inner) if inner is not None else (found if "type" in found else None)
        yield headers, event


def _recorded_chunk(event_type: str, payload: bytes) -> bytes:
    """A ``chunk`` recorded as the Anthropic event it carries, so the record reads as words, not base64."""
    inner = _chunk_bytes(payload) if event_type == "chunk" else None
    return inner if inner is not None and inner.lstrip().startswith(b"{") else payload


def _as_sse(stream: bytes) -> bytes:
    """An InvokeModel stream as the server-sent events Anthropic's own API would have sent, for its adapter to read;
    an exception becomes Anthropic's error event."""
    out = []
    for headers, event in _chunks(stream):
        if headers.get(":message-type") == "exception":
            message = as_str(headers.get(":exception-type")) or "error"
            out.append(encode_sse(orjson.dumps({"type": "error", "error": {"message": message}}), event="error"))
        elif isinstance(event, dict):
            out.append(encode_sse(orjson.dumps(event), event=as_str(event.get("type")) or None))
    return b"".join(out)


def chunk_event(anthropic_event: bytes) -> bytes:
    """One Anthropic event (its JSON) as an InvokeModel stream's ``chunk``."""
    return encode_event("chunk", {"bytes": base64.b64encode(anthropic_event).decode()})


class BedrockAdapter(ProviderAdapter):
    name = "bedrock"
    default_base_url = "https://bedrock-runtime.{region}.amazonaws.com"
    """``{region}`` is the configured region (``WARDEN_BEDROCK_REGION``)."""
    top_level_paths = frozenset({"model", "guardrail", "async-invoke"})
    forwards_raw_path = True

    def request_meta(self, route: str, body: Any, query: str) -> RequestMeta:
        model, api = split_route(route)
        return RequestMeta(model=model, stream=api in (Api.CONVERSE_STREAM, Api.INVOKE_STREAM))

    def answer_streams(self, route: str, requested: bool, content_type: str) -> bool:
        return content_type.startswith(CONTENT_TYPE) or super().answer_streams(route, requested, content_type)

    def error_body(self, status: int, message: str, kind: str) -> bytes:
        return orjson.dumps({"message": message})

    def recorded_answer(self, route: str, body: bytes) -> bytes:
        return as_text(body, _recorded_chunk)

    def error_headers(self, status: int) -> list[tuple[bytes, bytes]]:
        return [(b"x-amzn-errortype", error_type(status).encode())]

    def stream_error_event(
        self, message: str, *, route: str = "", content_type: str = CONTENT_TYPE, started: bool = True
    ) -> bytes:
        return encode_exception("internalServerException", message)

    def unforwardable_credential(self, headers: list[tuple[bytes, bytes]]) -> str | None:
        for name, value in headers:
            if name == b"authorization" and value[:16].upper().startswith(b"AWS4-HMAC-SHA256"):
                return (
                    "Warden cannot forward an AWS SigV4 signature (it signs Warden's host and path) nor verify it: "
                    "send a Warden key (as the access key id, or as a Bedrock API key in AWS_BEARER_TOKEN_BEDROCK), "
                    "or your own Bedrock API key"
                )
        return None

    def unjudgeable(self, route: str, body: Any) -> str | None:
        if split_route(route)[1] not in (Api.INVOKE, Api.INVOKE_STREAM):
            return None
        if isinstance(as_dict(body).get("anthropic_version"), str):
            return None
        return (
            "InvokeModel is read for Anthropic models only (a body with anthropic_version): the tool calls of this "
            "model's answer cannot be judged; use the Converse API"
        )

    def request_view(self, route: str, body: Any) -> ConversationView:
        meta = self.request_meta(route, body, "")
        api = split_route(route)[1]
        if api in (Api.INVOKE, Api.INVOKE_STREAM):
            view = _ANTHROPIC.request_view(route, body)
            return view.model_copy(
                update={
                    "provider": self.name,
                    "wire_format": INVOKE_WIRE_FORMAT,
                    "model": meta.model,
                    "stream": meta.stream,
                }
            )
        messages, tools = converse.conversation(body) if isinstance(body, dict) else ([], [])
        return ConversationView(
            provider=self.name,
            wire_format=converse.WIRE_FORMAT,
            model=meta.model,
            messages=messages,
            tools=tools,
            stream=meta.stream,
        )

    def completion_view(self, route: str, body: Any) -> CompletionView:
        if split_route(route)[1] in (Api.INVOKE, Api.INVOKE_STREAM) and as_dict(body).get("type") is not None:
            return _ANTHROPIC.completion_view(route, body)
        return converse.completion_view(body)

    def stream_view(self, route: str, stream: bytes) -> CompletionView:
        if split_route(route)[1] is Api.INVOKE_STREAM:
            return _ANTHROPIC.stream_view(route, _as_sse(stream))
        return converse.stream_view(stream)

    def replace_tool_results(self, route: str, body: Any, replacements: Mapping[str, str]) -> None:
        if split_route(route)[1] in (Api.INVOKE, Api.INVOKE_STREAM):
            _ANTHROPIC.replace_tool_results(route, body, replacements)
        else:
            converse.replace_tool_results(body, replacements)

    def refusal_body(self, route: str, body: Any, text: str) -> bytes:
        if split_route(route)[1] in (Api.INVOKE, Api.INVOKE_STREAM):
            return _ANTHROPIC.refusal_body(route, body, text)
        return converse.refusal_body(body, text)

    def held_stream(self, route: str, content_type: str) -> HeldStream:
        if split_route(route)[1] is Api.INVOKE_STREAM:
            return HeldInvokeStream()
        return converse.HeldConverseStream()


class HeldInvokeStream(HeldStream):
    """An InvokeModel stream: Anthropic's events inside event-stream chunks, judged as Anthropic's own stream is
    (``HeldMessagesStream``, which sees each chunk as the server-sent event it carries); its refusal is sent back as
    chunks."""

    def __init__(self) -> None:
        super().__init__()
        self._messages = HeldMessagesStream()

    def split(self, data: bytes) -> tuple[list[bytes], bytes]:
        return split_messages(data)

    def passed(self, event: bytes) -> None:
        self._messages.passed(_as_sse(event))

    def starts_hold(self, event: bytes) -> bool:
        return self._messages.starts_hold(_as_sse(event))

    def refusal_events(self, held: list[bytes], text: str) -> bytes:
        refusal = self._messages.refusal_events([_as_sse(raw) for raw in held], text)
        return b"".join(
            chunk_event(orjson.dumps(event))
            for event in (orjson.loads(data) for _, data in iter_events(refusal))
            if isinstance(event, dict)
        )
