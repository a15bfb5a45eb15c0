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
    bus_buffer_max_bytes: int = 64 * 1024**2
    """Bytes of events kept in memory while the broker is slow or away; beyond it the oldest are read back from the
    write-ahead log when the broker returns."""
    bus_spool_max_bytes: int = 2 * 1024**3
    """Size of the write-ahead log (``<data_dir>/spool/<service>``); beyond it events are dropped (and counted)."""
    bus_spool_flush_ms: int = 100
    """An event the broker has not acknowledged is fsynced to the write-ahead log at most this long after it was
    published: what a crash can lose."""
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
