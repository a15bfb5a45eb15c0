"""The ingress settings (environment variables prefixed ``WARDEN_``; CLI flags mirror them)."""

from __future__ import annotations

from pydantic import Field

from plumbing.settings import CommonSettings


class IngressSettings(CommonSettings):
    host: str = "0.0.0.0"
    port: int = 9000
    public_url: str | None = None
    """The address clients reach Warden at, used in connect URLs. Default: http://<host>:<port>."""
    openai_base_url: str = "https://api.openai.com/v1"
    anthropic_base_url: str = "https://api.anthropic.com"
    gemini_base_url: str = "https://generativelanguage.googleapis.com"
    custom_providers: dict[str, str] = Field(default_factory=dict)
    """OpenAI-compatible upstreams by name, e.g. ``{"vllm": "http://127.0.0.1:8000/v1"}``."""
    max_body_bytes: int = 32 * 1024 * 1024
    """Requests with a larger body are refused with 413."""
    max_recorded_body_bytes: int = 8 * 1024 * 1024
    """Bodies are recorded up to this size, then truncated (the client still gets everything)."""
    upstream_connect_timeout_s: float = 10.0
    upstream_read_timeout_s: float = 600.0
    """Longest silence tolerated from the upstream while waiting for (more of) its answer."""
    upstream_max_connections: int = 1000
    agent_label_cap: int = 200
    """Distinct agent_id values used as a metrics label; later ones are counted under ``__other__``."""
