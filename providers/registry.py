"""The known provider adapters by slug. A new wire format is one adapter module, listed here."""

from __future__ import annotations

from providers.anthropic import AnthropicAdapter
from providers.base import ProviderAdapter
from providers.gemini import GeminiAdapter
from providers.openai import OpenAIAdapter

_BUILTIN: tuple[type[ProviderAdapter], ...] = (OpenAIAdapter, AnthropicAdapter, GeminiAdapter)

BUILTIN_NAMES: frozenset[str] = frozenset(adapter.name for adapter in _BUILTIN)


def builtin_adapters() -> dict[str, ProviderAdapter]:
    return {adapter.name: adapter() for adapter in _BUILTIN}


def openai_compatible(name: str) -> ProviderAdapter:
    """An adapter for a custom OpenAI-compatible upstream (vLLM, Ollama, Groq, …), recorded under its own name."""
    return OpenAIAdapter(name)
