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
    base_urls = {
        "openai": settings.openai_base_url,
        "anthropic": settings.anthropic_base_url,
        "gemini": settings.gemini_base_url,
    }
    upstreams = {
        name: Upstream(adapter, base_urls[name].rstrip("/"))
        for name, adapter in builtin_adapters().items()
        if name in base_urls
    }
    for name, base_url in settings.custom_providers.items():
        upstreams[name] = Upstream(openai_compatible(name), base_url.rstrip("/"))
    return upstreams
