"""Settings shared by every service: environment variables prefixed ``WARDEN_``."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WARDEN_", extra="ignore")

    data_dir: Path = Path("warden-data")
    """Where the embedded store (chDB) and local state live."""
    kafka_bootstrap_servers: str | None = None
    """Kafka brokers (``host:port,…``). Unset: the in-process bus (embedded default)."""
    clickhouse_url: str | None = None
    """A ClickHouse server (``http://user:pass@host:8123``). Unset: chDB under ``data_dir``."""
    chdb_max_memory_bytes: int = Field(default=4 * 1024**3, ge=0)
    """chDB's whole memory (its ``max_server_memory_usage``: inserts, queries and caches together); beyond it a
    query or an insert fails (the logger retries it) instead of the process growing. 0: chDB's own bound, 90% of RAM."""
    chdb_max_query_memory_bytes: int = Field(default=2 * 1024**3, ge=0)
    """One chDB query or insert at most (its ``max_memory_usage``). 0: no bound per query."""
    bus_buffer_max_bytes: int = 64 * 1024**2
    """Bytes of events kept in memory while the broker is slow or away; beyond it the oldest are read back from the
    write-ahead log when the broker returns."""
    bus_unlogged_max_bytes: int = Field(default=256 * 1024**2, ge=1)
    """Kafka bus: bytes (estimated) of events published and not yet looked at by the write-ahead log's writer, which
    takes them every half ``bus_spool_flush_ms``; only a stalled disk fills it; beyond it events are dropped (and
    counted)."""
    bus_spool_max_bytes: int = 2 * 1024**3
    """Size of the write-ahead log (``<data_dir>/spool/<service>``); beyond it events are dropped (and counted)."""
    bus_spool_flush_ms: int = 100
    """An event the broker has not acknowledged is fsynced to the write-ahead log at most this long after it was
    published: what a crash can lose."""
    bus_memory_max_bytes: int = Field(default=64 * 1024**2, ge=1)
    """Bytes of events the in-process bus holds until every subscription handled them (``warden serve``'s
    background process reads its hand-off logs no faster; a process whose request path publishes to it drops and
    counts what finds no room)."""
    admin_token: SecretStr | None = None
    """When set, ``/api/*`` and the logs viewer require ``Authorization: Bearer <token>`` or a login session."""
    master_key: SecretStr | None = None
    """Fernet key(s), comma-separated, newest first (``warden keys master-key`` makes one): encrypts the provider
    credentials profiles hold and keys the hash of Warden keys. Every ingress and console needs the same value;
    unset, Warden keys and stored credentials are unavailable."""
    allowed_hosts: Annotated[list[str], NoDecode] = list(LOOPBACK_HOSTS)
    """Without an admin token, the read side answers only requests whose ``Host`` is one of these (any port, or the
    port given): a DNS-rebinding page reaches a loopback address under a name of its own, which is refused."""
    trusted_proxies: Annotated[list[str], NoDecode] = []
    """Addresses or networks (CIDR) of reverse proxies in front of the console: only from them are
    ``X-Forwarded-For`` (the client's address) and ``X-Forwarded-Proto`` (TLS or not) believed."""
    session_ttl_s: float = 12 * 3600
    """How long a login session lasts."""
    login_max_failures: int = 5
    """Failed admin-token attempts (login form or bearer) from one address before it must wait."""
    login_lockout_s: float = 60.0
    """The first wait after ``login_max_failures`` failures; it doubles with every further failure (up to an hour)."""
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

    @field_validator("allowed_hosts", "trusted_proxies", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        # The environment gives "a,b" (or a JSON list); files and arguments give lists.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as exc:
                raise ValueError(f"WARDEN_TRUSTED_PROXIES: {entry!r} is not an address or network") from exc
        return value

    @field_validator("admin_token")
    @classmethod
    def _not_blank(cls, token: SecretStr | None) -> SecretStr | None:
        # An empty token would let "Authorization: Bearer " in: refuse it rather than guess what was meant.
        if token is not None and not token.get_secret_value().strip():
            raise ValueError("WARDEN_ADMIN_TOKEN is set but empty; unset it or give it a value")
        return token

    @field_validator("master_key")
    @classmethod
    def _master_keys(cls, value: SecretStr | None) -> SecretStr | None:
        # Checked at start-up, so a typo is said at once rather than at the first key or credential.
        if value is not None:
            from plumbing.keyring import parse_master_keys

            parse_master_keys(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _metrics_token_needs_a_token(self) -> CommonSettings:
        # Asked to protect /metrics with no token to protect it with: refuse to start rather than leave it open.
        if self.metrics_require_token and self.admin_token is None:
            raise ValueError("WARDEN_METRICS_REQUIRE_TOKEN is set but WARDEN_ADMIN_TOKEN is not")
        return self
