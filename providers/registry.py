"""The known provider adapters by slug. A new wire format is one adapter module, listed here (or registered at run
time); whatever reads a record finds its adapter with ``adapter_for``."""

from __future__ import annotations

from providers.anthropic import AnthropicAdapter
from providers.azure import AzureAdapter
from providers.base import ProviderAdapter
from providers.bedrock import BedrockAdapter
from providers.gemini import GeminiAdapter
from providers.openai import OpenAIAdapter

_BUILTIN: tuple[type[ProviderAdapter], ...] = (
    OpenAIAdapter,
    AnthropicAdapter,
    GeminiAdapter,
    BedrockAdapter,
    AzureAdapter,
)

BUILTIN_NAMES: frozenset[str] = frozenset(adapter.name for adapter in _BUILTIN)

_READERS: dict[str, ProviderAdapter] = {adapter.name: adapter() for adapter in _BUILTIN}
"""The adapters that read records, by the provider name a record carries: the built-in ones and those registered."""


def builtin_adapters() -> dict[str, ProviderAdapter]:
    return {adapter.name: adapter() for adapter in _BUILTIN}


def openai_compatible(name: str) -> ProviderAdapter:
    """An adapter for a custom OpenAI-compatible upstream (vLLM, Ollama, Groq, …), recorded under its own name."""
    return OpenAIAdapter(name)


def register(adapter: ProviderAdapter) -> None:
    """Make an adapter the reader of the records of its provider name. A built-in name stays with its adapter."""
    if adapter.name in BUILTIN_NAMES:
        raise ValueError(f"{adapter.name!r} is a built-in provider")
    _READERS[adapter.name] = adapter


def unregister(name: str) -> None:
    if name not in BUILTIN_NAMES:
        _READERS.pop(name, None)


def adapter_for(provider: str) -> ProviderAdapter:
    """The adapter reading the records of ``provider``: a built-in or registered one by its name; any other name is a
    custom provider, configured at the ingress only, which speaks OpenAI's format."""
    return _READERS.get(provider) or openai_compatible(provider)
