"""The logger's settings (environment variables prefixed ``WARDEN_``)."""

from __future__ import annotations

from plumbing.settings import CommonSettings


class LoggerSettings(CommonSettings):
    metrics_port: int = 9101
    """Port of the logger's ``/metrics`` in distributed mode."""
    logger_group: str = "warden-logger"
    """Consumer group: loggers in one group share the partitions; another group gets its own copy of the events."""
    logger_max_batch: int = 20_000
    """Most events written in one insert."""
    logger_max_wait_s: float = 0.5
    """Longest a batch waits to fill before it is written."""
