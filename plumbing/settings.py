"""Settings shared by every service: environment variables prefixed ``WARDEN_``."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WARDEN_", extra="ignore")

    data_dir: Path = Path("warden-data")
    """Where the embedded store (chDB) and local state live."""
    kafka_bootstrap_servers: str | None = None
    """Kafka brokers (``host:port,…``). Unset: the in-process bus (embedded default)."""
    clickhouse_url: str | None = None
    """A ClickHouse server (``http://user:pass@host:8123``). Unset: chDB under ``data_dir``."""
    admin_token: SecretStr | None = None
    """When set, ``/api/*`` and the logs viewer require ``Authorization: Bearer <token>``."""
    log_level: str = "INFO"
