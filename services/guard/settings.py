"""The guard's settings (environment variables prefixed ``WARDEN_``)."""

from __future__ import annotations

from plumbing.settings import CommonSettings


class GuardSettings(CommonSettings):
    metrics_port: int = 9102
    """Port of the guard's ``/metrics`` in distributed mode."""
    agent_label_cap: int = 200
    """Distinct agent_id values used as a metrics label; later ones are counted under ``__other__``."""
