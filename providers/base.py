"""What every provider adapter offers: its wire format seen through the common view (``schemas.view``).

Adding a provider means adding one module with a ``ProviderAdapter`` subclass and registering it; the ingress, the
recorder, the policies and the guard only ever call these methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from schemas.view import CompletionView, ConversationView


@dataclass(frozen=True, slots=True)
class RequestMeta:
    model: str
    stream: bool


class ProviderAdapter(ABC):
    name: str
    """The provider's slug in ingress routes (``/v1/<name>/…``) and in records."""

    @abstractmethod
    def request_meta(self, route: str, body: Any, query: str) -> RequestMeta:
        """Model and streaming flag of a request, from just enough of it (this runs on the hot path)."""

    @abstractmethod
    def error_body(self, status: int, message: str, kind: str) -> bytes:
        """The provider's own error envelope, for errors Warden itself answers."""

    @abstractmethod
    def stream_error_event(self, message: str) -> bytes:
        """The provider's own in-stream error, sent when a stream fails after bytes reached the client."""

    @abstractmethod
    def request_view(self, route: str, body: Any) -> ConversationView:
        """What the client asked for, in the common view."""

    @abstractmethod
    def completion_view(self, route: str, body: Any) -> CompletionView:
        """A non-streamed answer in the common view."""

    @abstractmethod
    def stream_view(self, route: str, stream: bytes) -> CompletionView:
        """A streamed answer (the whole event stream as the client got it) in the common view."""


def error_kind(status: int) -> str:
    """A short machine-readable kind for an error status, used in every envelope."""
    return {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        502: "upstream_error",
        504: "upstream_timeout",
    }.get(status, "api_error")
