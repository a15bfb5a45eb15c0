"""Token counts for an answer whose provider reported none: an OpenAI chat stream the client asked for without
``stream_options.include_usage`` (the OpenAI SDK's default) carries no usage at all. The prompt and the answer are
counted with OpenAI's own tokenizer (``bpe-openai``, tiktoken-compatible, its vocabularies shipped in the package)
and the result is marked estimated: the per-message framing follows OpenAI's published counting rule, and a
non-OpenAI model behind an OpenAI-compatible API is counted with ``o200k_base`` as the nearest known vocabulary.
"""

from __future__ import annotations

import functools
from typing import Any

import orjson

from schemas.view import CompletionView, ConversationView, Usage

_FALLBACK = "o200k_base"
_PER_MESSAGE = 3
"""Tokens OpenAI's chat format adds around each message, and once to prime the answer."""


@functools.cache
def _encoding(name: str) -> Any:
    import bpe_openai  # loaded on first use: its vocabularies take a tenth of a second to load

    return bpe_openai.get_encoding(name)


def encoding_for(model: str) -> Any:
    import bpe_openai

    try:
        name = bpe_openai.encoding_name_for_model(model)
    except Exception:  # a model the tokenizer does not know (a custom provider's)
        name = _FALLBACK
    return _encoding(name)


def count(encoding: Any, text: str) -> int:
    return len(encoding.encode_ordinary(text)) if text else 0


def prompt_tokens(encoding: Any, view: ConversationView) -> int:
    total = _PER_MESSAGE
    for message in view.messages:
        total += _PER_MESSAGE + count(encoding, message.role) + count(encoding, message.text)
        for call in message.tool_calls:
            total += count(encoding, call.name) + count(encoding, _arguments(call.arguments))
        if message.tool_result is not None:
            total += count(encoding, message.tool_result.content)
    for tool in view.tools:
        total += count(encoding, tool.name) + count(encoding, tool.description or "")
        total += count(encoding, _arguments(tool.parameters)) if tool.parameters else 0
    return total


def completion_tokens(encoding: Any, completion: CompletionView) -> int:
    total = count(encoding, completion.text)
    for call in completion.tool_calls:
        total += count(encoding, call.name) + count(encoding, _arguments(call.arguments))
    return total


def estimated_usage(model: str, prompt: ConversationView | str, completion: CompletionView) -> Usage:
    """``prompt``: the request's common view, or its text when it could not be read (a body cut at the record's
    limit): then the text is counted whole, JSON syntax included, an over-estimate."""
    encoding = encoding_for(model)
    input_tokens = count(encoding, prompt) if isinstance(prompt, str) else prompt_tokens(encoding, prompt)
    return Usage(input_tokens=input_tokens, output_tokens=completion_tokens(encoding, completion), estimated=True)


def _arguments(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()
