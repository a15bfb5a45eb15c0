"""The upstreams the ingress forwards to: one per provider slug, each with its adapter and base URL."""

from __future__ import annotations

from dataclasses import dataclass

from botocore.credentials import Credentials

from providers.base import ProviderAdapter
from providers.registry import builtin_adapters, openai_compatible
from services.ingress.settings import IngressSettings
from services.ingress.signing import BedrockSigner


@dataclass(frozen=True, slots=True)
class Upstream:
    adapter: ProviderAdapter
    base_url: str
    signer: BedrockSigner | None = None
    """Signs each request with Warden's AWS credentials (Bedrock); None: credentials are headers."""

    def url(self, path: str, query: bytes) -> str:
        url = self.base_url + path
        return f"{url}?{query.decode('latin-1')}" if query else url


def bedrock_signer(settings: IngressSettings, region: str | None = None) -> BedrockSigner:
    """A signer with Warden's own AWS credentials (``WARDEN_BEDROCK_*``, else botocore's default chain) for
    ``region`` (default: ``WARDEN_BEDROCK_REGION``)."""
    region = region or settings.bedrock_region
    if settings.bedrock_access_key_id and settings.bedrock_secret_access_key is not None:
        token = settings.bedrock_session_token.get_secret_value() if settings.bedrock_session_token else None
        credentials = Credentials(
            settings.bedrock_access_key_id, settings.bedrock_secret_access_key.get_secret_value(), token
        )
        return BedrockSigner(region, credentials)
    return BedrockSigner(region)


def configured_upstreams(settings: IngressSettings) -> dict[str, Upstream]:
    """Every built-in provider, then the custom OpenAI-compatible ones (which may not take a built-in's name)."""
    upstreams = {
        name: Upstream(
            adapter,
            settings.base_url(name, adapter.default_base_url.format(region=settings.bedrock_region)).rstrip("/"),
            bedrock_signer(settings) if name == "bedrock" else None,
        )
        for name, adapter in builtin_adapters().items()
    }
    for name, base_url in settings.custom_providers.items():
        if name in upstreams:
            raise ValueError(f"custom provider {name!r} would shadow the built-in provider of that name")
        upstreams[name] = Upstream(openai_compatible(name), base_url.rstrip("/"))
    return upstreams
