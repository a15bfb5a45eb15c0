"""OpenAI embeddings (``/embeddings``): the inputs are what the guard reads; the vectors are not text to record."""

from __future__ import annotations

from typing import Any

from providers.common import as_dict, as_int, optional_str
from schemas.view import CompletionView, ConversationView, Message, Usage


def request_view(provider: str, model: str, body: dict[str, Any]) -> ConversationView:
    raw = body.get("input")
    inputs = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
    # Pre-tokenised inputs (lists of token ids) carry no text to look at.
    messages = [
        Message(role="user", text=text, index=index) for index, text in enumerate(inputs) if isinstance(text, str)
    ]
    return ConversationView(provider=provider, wire_format="OpenAI embeddings", model=model, messages=messages)


def completion_view(body: dict[str, Any]) -> CompletionView:
    found = as_dict(body.get("usage"))
    prompt_tokens = as_int(found.get("prompt_tokens"))
    # An embedding has no output tokens; say 0 rather than "unknown" once the input is counted.
    return CompletionView(
        usage=Usage(input_tokens=prompt_tokens, output_tokens=None if prompt_tokens is None else 0),
        model=optional_str(body.get("model")) or None,
    )
