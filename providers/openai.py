"""OpenAI's wire format, dispatched by route: chat completions, the Responses API and embeddings, each in its own
module; any other route (``/models``…) is proxied and recorded with what the common view can say of it (its usage).
OpenAI-compatible providers (vLLM, Ollama, Groq…) use this adapter under their own name."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from providers import openai_chat, openai_embeddings, openai_responses
from providers.base import ProviderAdapter, RequestMeta
from providers.common import error_message
from providers.held_stream import HeldStream
from schemas.view import CompletionView, ConversationView


class Api(Enum):
    CHAT = "chat"
    RESPONSES = "responses"
    CONVERSATIONS = "conversations"
    EMBEDDINGS = "embeddings"
    OTHER = "other"


def api_of(route: str) -> Api:
    """Which API a route belongs to; matched on its end so a base URL without ``/v1`` (``/v1/chat/…``) works too."""
    path = route.rstrip("/")
    if path.endswith("/chat/completions"):
        return Api.CHAT
    if path.endswith("/embeddings"):
        return Api.EMBEDDINGS
    if path.endswith("/responses") or "/responses/" in path:
        return Api.RESPONSES
    if path.endswith("/conversations") or (path.endswith("/items") and "/conversations/" in path):
        return Api.CONVERSATIONS
    return Api.OTHER


def _conversation_in(route: str) -> str | None:
    """``…/conversations/{id}/items`` → the id; None for the route that creates a conversation."""
    path = route.rstrip("/")
    if not path.endswith("/items"):
        return None
    return path.removesuffix("/items").rpartition("/")[2] or None


class OpenAIAdapter(ProviderAdapter):
    name = "openai"
    default_base_url = "https://api.openai.com/v1"
    top_level_paths = frozenset(
        {
            *("chat", "completions", "responses", "conversations", "embeddings", "models", "moderations"),
            *("files", "uploads", "batches", "images", "audio", "videos", "fine_tuning", "vector_stores"),
            *("assistants", "threads", "realtime", "containers", "evals", "organization", "chatkit", "skills"),
            "v1",  # an OpenAI-compatible server whose base URL leaves out its /v1
            "api",  # Ollama's own API beside its OpenAI-compatible one
        }
    )

    def __init__(self, name: str = "openai") -> None:
        self.name = name

    def request_meta(self, route: str, body: Any, query: str) -> RequestMeta:
        if not isinstance(body, dict):
            return RequestMeta(model="", stream=False)
        model = body.get("model")
        return RequestMeta(model=model if isinstance(model, str) else "", stream=body.get("stream") is True)

    def stream_reports_usage(self, route: str, body: Any) -> bool:
        """Chat completions (and legacy completions) stream usage only when asked with
        ``stream_options.include_usage``; the Responses API always ends with it."""
        if api_of(route) not in (Api.CHAT, Api.OTHER) or not isinstance(body, dict):
            return True
        options = body.get("stream_options")
        return isinstance(options, dict) and options.get("include_usage") is True

    def error_body(self, status: int, message: str, kind: str) -> bytes:
        return openai_chat.error_payload(message, kind, kind)

    def stream_error_event(
        self, message: str, *, route: str = "", content_type: str = "text/event-stream", started: bool = True
    ) -> bytes:
        if api_of(route) is Api.RESPONSES:
            return openai_responses.stream_error_event(message)
        return openai_chat.stream_error_event(message)

    def request_view(self, route: str, body: Any) -> ConversationView:
        meta = self.request_meta(route, body, "")
        if not isinstance(body, dict):
            return ConversationView(provider=self.name, model=meta.model)
        api = api_of(route)
        if api is Api.CHAT:
            return openai_chat.request_view(self.name, meta.model, meta.stream, body)
        if api is Api.RESPONSES:
            return openai_responses.request_view(self.name, meta.model, meta.stream, body)
        if api is Api.CONVERSATIONS:
            # Items written into a conversation the provider keeps: judged like a Responses input.
            conversation = _conversation_in(route)
            items = (
                {"input": body.get("items"), "conversation": conversation}
                if conversation
                else {"input": body.get("items")}
            )
            return openai_responses.request_view(self.name, meta.model, False, items)
        if api is Api.EMBEDDINGS:
            return openai_embeddings.request_view(self.name, meta.model, body)
        return ConversationView(provider=self.name, model=meta.model, stream=meta.stream)

    def completion_view(self, route: str, body: Any) -> CompletionView:
        if not isinstance(body, dict):
            return CompletionView()
        api = api_of(route)
        error = error_message(body)
        if error is not None and api is not Api.RESPONSES:  # a failed response is still a response, read below
            return CompletionView(error=error)
        if api is Api.RESPONSES:
            return openai_responses.completion_view(body)
        if api is Api.CONVERSATIONS:
            conversation = _conversation_in(route) or (body.get("id") if body.get("object") == "conversation" else None)
            return CompletionView(
                provider_refs=[f"conversation:{conversation}"] if isinstance(conversation, str) else []
            )
        if api is Api.EMBEDDINGS:
            return openai_embeddings.completion_view(body)
        if api is Api.CHAT or "choices" in body:  # legacy completions answer in the chat envelope (a choice's text)
            return openai_chat.completion_view(body)
        return CompletionView(usage=openai_chat.usage(body.get("usage")))

    def stream_view(self, route: str, stream: bytes) -> CompletionView:
        if api_of(route) is Api.RESPONSES:
            return openai_responses.stream_view(stream)
        # Chat completions, and whatever else streams in its shape (legacy completions report usage the same way).
        return openai_chat.stream_view(stream)

    def replace_tool_results(self, route: str, body: Any, replacements: Mapping[str, str]) -> None:
        if not isinstance(body, dict) or not replacements:
            return
        api = api_of(route)
        if api is Api.CHAT:
            openai_chat.replace_tool_results(body, replacements)
        elif api is Api.RESPONSES:
            openai_responses.replace_tool_results(body, replacements)

    def refusal_body(self, route: str, body: Any, text: str) -> bytes:
        if api_of(route) is Api.RESPONSES:
            return openai_responses.refusal_body(body, text)
        return openai_chat.refusal_body(body, text)

    def held_stream(self, route: str, content_type: str) -> HeldStream:
        if api_of(route) is Api.RESPONSES:
            return openai_responses.HeldResponsesStream()
        return openai_chat.HeldChatStream()
