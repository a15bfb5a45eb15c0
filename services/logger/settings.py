"""The logger's settings (environment variables prefixed ``WARDEN_``)."""

from __future__ import annotations

from plumbing.settings import CommonSettings


class LoggerBatching(CommonSettings):
    """How the logger batches its inserts: the same settings in ``warden serve`` and in ``warden logger``."""

    logger_group: str = "warden-logger"
    """Consumer group: loggers in one group share the partitions; another group gets its own copy of the events."""
    logger_max_batch: int = 50_000
    """Most events written in one insert (a batch also stops at 64 MB of payloads, so large bodies make smaller
    batches). Each insert is a part that chDB then merges, for every table the insert fills (``warden.interactions``
    and the read-side copies its materialized views fill): small batches mean more merging, which costs more than the
    rest of the logger. Measured with ``bench/logger_ingest.py`` on 2 cores (logger CPU per interaction including the
    merges that follow; interactions/s on a quiet machine), with the read-side copies: ~100 µs at 5 000, ~55 µs and
    ~29k/s at 20 000, ~47 µs and ~33k/s at 50 000; with ``warden.interactions`` alone, 20 000 and 50 000 are even
    (~36 µs, ~38k/s). The price of 50 000: ~250 MB more memory (two batches are written while the next is read) and
    more to read again after a crash. Live traffic below capacity is cut by ``logger_max_wait_s`` first: the size
    matters when catching up on a backlog."""
    logger_max_wait_s: float = 0.5
    """Longest a batch waits to fill before it is written."""


class LoggerSettings(LoggerBatching):
    metrics_port: int = 9101
    """Port of the logger's ``/metrics`` in distributed mode."""
