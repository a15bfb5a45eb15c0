"""The console's settings (environment variables prefixed ``WARDEN_``)."""

from __future__ import annotations

from plumbing.settings import CommonSettings


class ConsoleSettings(CommonSettings):
    host: str = "0.0.0.0"
    console_port: int = 9001
    """Port of ``warden console`` in distributed mode (``warden serve`` serves the console on its own port)."""
