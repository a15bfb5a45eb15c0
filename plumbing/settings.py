"""Settings shared by every service: environment variables prefixed ``WARDEN_``."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WARDEN_", extra="ignore")

    data_dir: Path = Path("warden-data")
    """Where the embedded store (chDB) and local state live."""
    kafka_bootstrap_servers: str | None = None
    """Kafka brokers (``host:port,…``). Unset: the in-process bus (embedded default)."""
    clickhouse_url: str | None = None
    """A ClickHouse server (``http://user:pass@host:8123``). Unset: chDB under ``data_dir``."""
    bus_buffer_limit: int = 20_000
    """Events kept in memory while the broker is slow or away; beyond it they are spilled to the disk spool."""
    bus_spool_max_bytes: int = 2 * 1024**3
    """Disk spool size; beyond it events are dropped (and counted)."""
    admin_token: SecretStr | None = None
    """When set, ``/api/*`` and the logs viewer require ``Authorization: Bearer <token>``."""
    metrics_require_token: bool = False
    """When set, ``/metrics`` (on every service) requires the admin token as well; needs ``admin_token``."""
    log_level: str = "INFO"
    cache_max_bytes: int = 64 * 1024 * 1024
    """All the hot path's caches together (views of messages seen before, judgements remembered) hold at most this
    many bytes (estimated); the oldest entries go first."""
    # -- what one HTTP request may cost the server (every HTTP service: ingress, console, metrics) ------------------
    max_header_bytes: int = 64 * 1024
    """Request line and headers together; more is refused with 431."""
    max_header_count: int = 100
    """Headers in one request; more is refused with 431."""
    header_timeout_s: float = 10.0
    """Time from a request's first byte (or from the connection) to its last header; beyond it, 408."""
    body_timeout_s: float = 60.0
    """Time to receive a request's body once its headers are in; beyond it, 408."""

    @field_validator("admin_token")
    @classmethod
    def _not_blank(cls, token: SecretStr | None) -> SecretStr | None:
        # An empty token would let "Authorization: Bearer " in: refuse it rather than guess what was meant.
        if token is not None and not token.get_secret_value().strip():
            raise ValueError("WARDEN_ADMIN_TOKEN is set but empty; unset it or give it a value")
        return token

    @model_validator(mode="after")
    def _metrics_token_needs_a_token(self) -> CommonSettings:
        # Asked to protect /metrics with no token to protect it with: refuse to start rather than leave it open.
        if self.metrics_require_token and self.admin_token is None:
            raise ValueError("WARDEN_METRICS_REQUIRE_TOKEN is set but WARDEN_ADMIN_TOKEN is not")
        return self
