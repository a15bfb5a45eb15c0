"""What every provider adapter offers: its wire format seen through the common view (``schemas.view``).

Adding a provider means adding one module with a ``ProviderAdapter`` subclass and registering it; the ingress, the
recorder, the policies and the guard only ever call these methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from providers.held_stream import HeldStream
from schemas.view import CompletionView, ConversationView


@dataclass(frozen=True, slots=True)
class RequestMeta:
    model: str
    stream: bool


class ProviderAdapter(ABC):
    name: str
    """The provider's slug in ingress routes (``/v1/<name>/…``) and in records."""
    default_base_url: str
    """Where the provider's API lives; the ingress settings may point the provider elsewhere."""
    top_level_paths: frozenset[str] = frozenset()
    """The first segments of the API's own paths (below the base URL): a path starting with one has no profile
    segment. Any other first segment is a profile reference."""
    forwards_raw_path: bool = False
    """The upstream path is the one the client sent, percent-encodings kept (an encoded ``/`` inside a segment
    included: Bedrock's model ids may be ARNs), rather than the decoded path."""

    @abstractmethod
    def request_meta(self, route: str, body: Any, query: str) -> RequestMeta:
        """Model and streaming flag of a request, from just enough of it (this runs on the hot path)."""

    def answer_streams(self, route: str, requested: bool, content_type: str) -> bool:
        """Whether an answer is a stream, from what the request asked for (``RequestMeta.stream``) and the answer's
        content type, never from how its body is framed: a JSON answer sent chunked without a length is still one
        JSON document, to be read and judged whole. An event stream is a stream whatever was asked."""
        if content_type.startswith("text/event-stream"):
            return True
        return requested and not content_type.startswith("application/json")

    @abstractmethod
    def error_body(self, status: int, message: str, kind: str) -> bytes:
        """The provider's own error envelope, for errors Warden itself answers."""

    def recorded_answer(self, route: str, body: bytes) -> bytes:
        """An answer as the record keeps it: its bytes, unless they are not text (AWS's binary event stream), then a
        text rendering of them that ``stream_view`` reads too."""
        return body

    def error_headers(self, status: int) -> list[tuple[bytes, bytes]]:
        """Headers that go with ``error_body`` (a provider that names its errors in a header)."""
        return []

    def unforwardable_credential(self, headers: list[tuple[bytes, bytes]]) -> str | None:
        """Why a credential the client sent cannot be forwarded upstream as it is (None: it can, or there is none)."""
        return None

    @abstractmethod
    def stream_error_event(
        self, message: str, *, route: str = "", content_type: str = "text/event-stream", started: bool = True
    ) -> bytes:
        """The provider's own in-stream error, sent when a stream fails after bytes reached the client.

        ``route`` and the upstream's ``content_type`` tell which kind of stream it is (one provider may stream in
        several shapes); ``started`` is False when the upstream failed before sending any byte of its body."""

    @abstractmethod
    def request_view(self, route: str, body: Any) -> ConversationView:
        """What the client asked for, in the common view. ``Message.index`` is the position of the provider message
        in the request's message list; -1 for an instruction held outside that list (Anthropic's ``system``,
        Gemini's ``systemInstruction``, the Responses API's ``instructions``)."""

    @abstractmethod
    def completion_view(self, route: str, body: Any) -> CompletionView:
        """A non-streamed answer in the common view.

        ``usage.input_tokens`` counts every prompt token, cached ones included (``cached_tokens`` says how many were
        read from a cache); ``finish_reason`` is the provider's own word for it."""

    def unjudgeable(self, route: str, body: Any) -> str | None:
        """Why the answer to the request ``body`` (parsed) could not be judged, its wire format being one the adapter
        does not read (None: it reads it). A restrictive profile refuses such a request."""
        return None

    def priced_model(self, requested: str, completion: CompletionView) -> str:
        """The model an answer is priced as: the one requested (``RequestMeta.model``), unless the provider's request
        names something that is not a model (an Azure deployment) and its answer says which model served it."""
        return requested

    def stream_reports_usage(self, route: str, body: Any) -> bool:
        """Whether a streamed answer to the request ``body`` (parsed) carries the provider's token usage; when it
        does not, the record's tokens and cost are estimated."""
        return True

    @abstractmethod
    def stream_view(self, route: str, stream: bytes) -> CompletionView:
        """A streamed answer (the whole event stream as the client got it) in the common view; ``finish_reason`` is
        ``"error"`` when the stream carried an error event and no finish reason."""

    # -- what the inline policies need to change an exchange -------------------------------------------------------

    @abstractmethod
    def replace_tool_results(self, route: str, body: Any, replacements: Mapping[str, str]) -> None:
        """In the parsed request ``body`` (changed in place), replace the content of every tool result whose tool call
        id is a key of ``replacements`` by its value (ids as ``request_view`` gives them)."""

    @abstractmethod
    def refusal_body(self, route: str, body: Any, text: str) -> bytes:
        """The non-streamed answer ``body`` (parsed) rewritten as a plain assistant text turn saying ``text``: no tool
        call, a normal finish, the same ids and usage."""

    @abstractmethod
    def held_stream(self, route: str, content_type: str) -> HeldStream:
        """A filter for one streamed answer that holds tool calls back until they are judged."""


def error_kind(status: int) -> str:
    """A short machine-readable kind for an error status, used in every envelope."""
    return {
        400: "invalid_request_error",
        401: "authentication_error",
        402: "budget_exceeded",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        502: "upstream_error",
        504: "upstream_timeout",
    }.get(status, "api_error")
