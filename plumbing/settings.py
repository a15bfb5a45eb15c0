"""Settings shared by every service: environment variables prefixed ``WARDEN_``."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr, field_validator
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
    log_level: str = "INFO"

    @field_validator("admin_token")
    @classmethod
    def _not_blank(cls, token: SecretStr | None) -> SecretStr | None:
        # An empty token would let "Authorization: Bearer " in: refuse it rather than guess what was meant.
        if token is not None and not token.get_secret_value().strip():
            raise ValueError("WARDEN_ADMIN_TOKEN is set but empty; unset it or give it a value")
        return token
