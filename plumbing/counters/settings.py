"""Where the budgets' and rate limits' counters live: environment variables prefixed ``WARDEN_``.

A service that enforces limits (the ingress) takes these with its own settings (inherit :class:`CounterSettings`).
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class CounterSettings(BaseSettings):
    # hide_input_in_errors: a refused WARDEN_REDIS_URL is not echoed, password and all, in the start-up error.
    model_config = SettingsConfigDict(env_prefix="WARDEN_", extra="ignore", hide_input_in_errors=True)

    redis_url: SecretStr | None = None
    """A Redis server holding the counters every ingress shares (``redis://:password@host:6379/0``, ``rediss://`` for
    TLS). Unset: each process counts alone. A secret: it may carry the password, and is never logged as given."""
    redis_timeout_ms: float = Field(default=50.0, gt=0)
    """Longest wait for one counter operation (connecting included); beyond it the store counts as unavailable and
    the limit's fail-open or fail-closed mode decides, so a slow Redis never stalls a request for longer."""
    redis_key_prefix: str = ""
    """Keys are ``warden:<prefix>:<counter>`` (``warden:<counter>`` when empty): deployments sharing one Redis
    keep apart."""
    redis_max_connections: int = Field(default=64, ge=1)
    """Connections to Redis per process; a request finding them all busy waits within the timeout above."""
    redis_pause_ms: float = Field(default=1000.0, ge=0)
    """After Redis failed to answer, how long counter operations fail at once without asking it (each limit's
    fail-open or fail-closed mode decides without waiting for a timeout), before the next request tries again."""

    counters_pending_max_bytes: int = Field(default=1024 * 1024, ge=0)
    """Settlements (and releases) waiting for a store that answers over the network (Redis), in bytes of the
    counters' names they carry: the answer has gone already, so they wait off the request path. Beyond it a
    settlement is dropped, its reservation standing until its window ends (counted in
    ``warden_counter_settlements_dropped_total``)."""

    @field_validator("redis_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # Deployments pass an empty variable for "no Redis" (compose's ${WARDEN_REDIS_URL:-}).
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("WARDEN_REDIS_URL must start with redis://, rediss:// or unix://")
        return value
