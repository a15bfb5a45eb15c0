"""Warden's own tracing settings (environment variables prefixed ``WARDEN_``); the exporter reads the standard
``OTEL_*`` variables and its queue's bound itself (``plumbing/tracing.py``)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class TracingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WARDEN_", extra="ignore")

    trace_content: bool = False
    """Export the request as forwarded and the answer's text on the spans (as recorded: secrets masked where the
    profile redacts). Off: spans carry metadata only."""
    trace_content_max_bytes: int = 16 * 1024
    """Bytes of each of those texts a span carries at most (the rest is cut). What a slow collector can make Warden
    hold is bounded by ``WARDEN_TRACE_QUEUE_MAX_BYTES`` (``plumbing/tracing.py``) either way."""
    trace_pending_max_bytes: int = 8 * 1024**2
    """Bytes of requests kept while their answers are awaited (what a span needs from the request); past it the
    oldest are forgotten and their spans are built from the answer alone."""
