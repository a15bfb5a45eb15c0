"""The upstreams the ingress forwards to: one per provider slug, each with its adapter and base URL."""

from __future__ import annotations

from dataclasses import dataclass

from providers.base import ProviderAdapter
from providers.registry import builtin_adapters, openai_compatible
from services.ingress.settings import IngressSettings


@dataclass(frozen=True, slots=True)
class Upstream:
    adapter: ProviderAdapter
    base_url: str

    def url(self, path: str, query: bytes) -> str:
        url = self.base_url + path
        return f"{url}?{query.decode('latin-1')}" if query else url


def configured_upstreams(settings: IngressSettings) -> dict[str, Upstream]:
    """Every built-in provider, then the custom OpenAI-compatible ones (which may not take a built-in's name)."""
    upstreams = {
        name: Upstream(adapter, settings.base_url(name, adapter.default_base_url).rstrip("/"))
        for name, adapter in builtin_adapters().items()
    }
    for name, base_url in settings.custom_providers.items():
        if name in upstreams:
            raise ValueError(f"custom provider {name!r} would shadow the built-in provider of that name")
        upstreams[name] = Upstream(openai_compatible(name), base_url.rstrip("/"))
    return upstreams
