"""The known provider adapters by slug."""

from __future__ import annotations

from providers.base import ProviderAdapter
from providers.openai import OpenAIAdapter


def builtin_adapters() -> dict[str, ProviderAdapter]:
    return {"openai": OpenAIAdapter()}


def openai_compatible(name: str) -> ProviderAdapter:
    """An adapter for a custom OpenAI-compatible upstream (vLLM, Ollama, Groq, …), recorded under its own name."""
    adapter = OpenAIAdapter()
    adapter.name = name
    return adapter
