"""The ingress settings: environment variables prefixed ``WARDEN_`` (CLI flags mirror them), and optionally a
configuration file named by ``WARDEN_CONFIG`` (TOML or JSON) holding the same keys, e.g.::

    openai_base_url = "https://api.openai.com/v1"

    [custom_providers]
    vllm = "http://127.0.0.1:8000/v1"
    ollama = "http://127.0.0.1:11434/v1"

Precedence, highest first: arguments, environment, ``.env``, the configuration file, defaults. Tables merge key by key
(a custom provider from the environment joins those from the file).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    JsonConfigSettingsSource,
    PydanticBaseSettingsSource,
    TomlConfigSettingsSource,
)

from plumbing.counters.settings import CounterSettings
from plumbing.settings import CommonSettings
from providers.registry import BUILTIN_NAMES
from schemas.upstreams import DeploymentSpec, ModelAliasSpec
from services.pricing.catalogue import ModelPrices

CONFIG_ENV = "WARDEN_CONFIG"
_PROVIDER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class IngressSettings(CommonSettings, CounterSettings):
    config: Path | None = None
    """A TOML or JSON configuration file (``WARDEN_CONFIG``) read under the environment."""
    host: str = "0.0.0.0"
    port: int = 9000
    public_url: str | None = None
    """The address clients reach Warden at, used in connect URLs. Default: http://<host>:<port>, with 127.0.0.1 for a
    host that means every address."""
    openai_base_url: str = "https://api.openai.com/v1"
    anthropic_base_url: str = "https://api.anthropic.com"
    gemini_base_url: str = "https://generativelanguage.googleapis.com"
    bedrock_region: str = Field(default="us-east-1", pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    """The AWS region Bedrock requests are signed for and sent to (``https://bedrock-runtime.<region>.amazonaws.com``
    unless ``provider_base_urls`` names another base URL for ``bedrock``)."""
    bedrock_access_key_id: str | None = None
    """Warden's own AWS credentials for Bedrock, used for Warden keys whose profile stores no ``bedrock`` credential.
    Unset: botocore's default chain (environment, shared files, instance or container role)."""
    bedrock_secret_access_key: SecretStr | None = None
    bedrock_session_token: SecretStr | None = None
    azure_base_url: str | None = None
    """The Azure OpenAI resource's endpoint, ``https://{resource}.openai.azure.com`` (no default: every resource has
    its own). Unset, requests to ``/v1/azure/…`` are answered 502 in Azure's error shape, saying so."""
    provider_base_urls: dict[str, str] = Field(default_factory=dict)
    """Base URLs of built-in providers by slug, over the ``*_base_url`` fields and the adapters' defaults."""
    custom_providers: dict[str, str] = Field(default_factory=dict)
    """OpenAI-compatible upstreams by name, e.g. ``{"vllm": "http://127.0.0.1:8000/v1"}``, served at
    ``/v1/{name}/…``. A name may not be a built-in provider's."""
    max_body_bytes: int = 32 * 1024 * 1024
    """Requests with a larger body are refused with 413."""
    max_recorded_body_bytes: int = 8 * 1024 * 1024
    """Bodies are recorded up to this size, then truncated (the client still gets everything). An answer is never held
    whole for its record: beyond this size only its first bytes are kept."""
    max_judged_answer_bytes: int = 16 * 1024 * 1024
    """A restrictive profile judges an answer's tool calls before they reach the client: a non-streamed answer is held
    up to this size, and a stream's events are kept up to it for the judgement at its end (its text still flows at
    once). Beyond it the answer is refused (502 in the provider's shape, or the provider's error event in a stream)
    and recorded with the reason: what cannot be judged is not released."""
    upstream_connect_timeout_s: float = 10.0
    upstream_read_timeout_s: float = 600.0
    """Longest silence tolerated from the upstream while waiting for (more of) its answer."""
    upstream_max_connections: int = 1000
    agent_label_cap: int = 200
    """Distinct agent_id values used as a metrics label; later ones are counted under ``__other__``."""
    access_log: bool = False
    """One JSON line per proxied request on stderr (method, path, status, duration, interaction id). Warden's own
    5xx answers are logged as warnings either way."""
    metrics_label_cap: int = 200
    """Distinct values of every other metrics label a client can influence (model, profile_id, provider)."""
    metrics_label_max_chars: int = 128
    """Metrics label values are cut to this length."""
    history_max_bytes: int = 16 * 1024 * 1024
    """What the ingress remembers of provider-held histories (``previous_response_id``, ``conversation``), in memory
    and in the replicated buckets; the oldest records go first."""
    history_ttl_s: float = 7 * 24 * 3600
    """Records of provider-held histories older than this are forgotten (a request continuing one is untrusted)."""
    prices: dict[str, ModelPrices] = Field(default_factory=dict)
    """Prices (USD per million tokens) by ``provider/model`` (``*/model``: at any provider), over the genai-prices
    catalogue: a custom provider's models, negotiated rates. E.g. ``{"vllm/llama-3.1-8b": {"input_mtok": 0.1,
    "output_mtok": 0.2}}``; ``cache_read_mtok``, ``cache_write_mtok`` and ``reasoning_mtok`` default to the input and
    output rates."""
    price_providers: dict[str, str] = Field(default_factory=dict)
    """Which catalogue provider prices a custom provider's models (``{"mycloud": "groq"}``); by default its own name."""
    deployments: dict[str, DeploymentSpec] = Field(default_factory=dict)
    """Upstream deployments by name (``[deployments.east]`` tables in ``WARDEN_CONFIG``), beside those the admin API
    stores."""
    model_aliases: dict[str, ModelAliasSpec] = Field(default_factory=dict)
    """Model aliases by ``provider/model`` (``[model_aliases."openai/gpt-4o"]``): the deployments a requested model
    is routed over. Without any, requests go to the provider's one upstream as always."""
    routing_deadline_s: float = Field(default=30.0, gt=0)
    """A routed request starts no new attempt, and waits for none, past this long after it arrived (an attempt under
    way is not cut short: a long generation may take minutes)."""
    routing_backoff_base_s: float = Field(default=0.25, ge=0)
    routing_backoff_cap_s: float = Field(default=8.0, ge=0)
    """Before trying a deployment again: a random wait up to base·2^n, at most the cap (full jitter), or longer when
    the provider asked for it (``Retry-After``, rate-limit resets)."""
    breaker_failures: int = Field(default=5, ge=1)
    """Consecutive failed attempts after which a deployment's breaker opens (in each proxy process)."""
    breaker_cooldown_s: float = Field(default=30.0, gt=0)
    """How long an open breaker keeps a deployment out; then one request probes it."""

    counters_max_bytes: int = Field(default=8 * 1024 * 1024, ge=64 * 1024)
    """The table budgets and rate limits are counted in (``<data_dir>/counters.bin``, shared by ``warden serve``'s
    proxy processes), 32 bytes a counter: 8 MiB holds 262,142 counters (one per budget or limit, per agent, user or
    key, per window). A counter that finds no room is treated as the store being unavailable."""

    @field_validator("custom_providers")
    @classmethod
    def _custom_providers_are_distinct(cls, value: dict[str, str]) -> dict[str, str]:
        for name, base_url in value.items():
            if name in BUILTIN_NAMES:
                raise ValueError(
                    f"custom provider {name!r} would shadow the built-in provider of that name "
                    f"(built-in: {', '.join(sorted(BUILTIN_NAMES))}); give it another name"
                )
            if not _PROVIDER_NAME.match(name):
                raise ValueError(
                    f"custom provider name {name!r} must be 1-63 lower-case letters, digits, '-' or '_' "
                    "(it is a path segment: /v1/<name>/…)"
                )
            _check_url(base_url, f"custom provider {name!r}: base URL")
        return value

    @field_validator("openai_base_url", "anthropic_base_url", "gemini_base_url", "azure_base_url", "public_url")
    @classmethod
    def _is_url(cls, value: str | None) -> str | None:
        return value if value is None else _check_url(value)

    @field_validator("provider_base_urls")
    @classmethod
    def _are_urls(cls, value: dict[str, str]) -> dict[str, str]:
        for name, base_url in value.items():
            _check_url(base_url, f"provider {name!r}: base URL")
        return value

    def base_url(self, provider: str, default: str) -> str:
        """Where a built-in provider's upstream is: ``provider_base_urls``, else its own field, else ``default``."""
        named = {"openai": self.openai_base_url, "anthropic": self.anthropic_base_url, "gemini": self.gemini_base_url}
        named["azure"] = self.azure_base_url or ""
        return self.provider_base_urls.get(provider) or named.get(provider) or default

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources = [init_settings, env_settings, dotenv_settings]
        path = _config_path(init_settings)
        if path is not None:
            sources.append(_config_file_source(settings_cls, path))
        return (*sources, file_secret_settings)


def _check_url(value: str, what: str = "") -> str:
    """An http(s) URL with a host, said plainly otherwise: a typo here would only show up as failing requests."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what + ' ' if what else ''}{value!r} must start with http:// or https:// and name a host")
    return value


def _config_path(init_settings: PydanticBaseSettingsSource) -> Path | None:
    """The configuration file named by the ``config`` argument, else by ``WARDEN_CONFIG``."""
    given: Any = init_settings.init_kwargs.get("config") if isinstance(init_settings, InitSettingsSource) else None
    if given is None:
        given = next((value for key, value in os.environ.items() if key.upper() == CONFIG_ENV), None)
    return Path(given) if given else None


def _config_file_source(settings_cls: type[BaseSettings], path: Path) -> PydanticBaseSettingsSource:
    if not path.is_file():
        raise ValueError(f"{CONFIG_ENV}: the configuration file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".toml":
        return TomlConfigSettingsSource(settings_cls, toml_file=path)
    if suffix == ".json":
        return JsonConfigSettingsSource(settings_cls, json_file=path)
    raise ValueError(f"{CONFIG_ENV}: {path} is neither a .toml nor a .json file")
