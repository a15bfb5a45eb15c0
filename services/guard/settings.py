"""The guard's settings (environment variables prefixed ``WARDEN_``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field

from plumbing.settings import CommonSettings
from services.guard.detectors import learned, memo


def _word(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


class DetectorSettings(CommonSettings):
    """How the detectors read texts: the same settings in ``warden serve`` and in ``warden guard``.

    The detectors read these variables where they run (``detectors/learned.py``, ``detectors/memo.py``: tests and the
    evaluation change them between texts); they are declared here so that a wrong value stops the start with a line
    naming it. Found only by the detectors, it would make every event fail to score: a guard that finds nothing."""

    guard_learned_tier: Annotated[learned.Mode, BeforeValidator(_word)] = learned.DEFAULT_MODE
    """``WARDEN_GUARD_LEARNED_TIER``: gated, wide, every or off (see ``detectors/learned.py``)."""
    guard_learned_cpu_share: float = Field(default=learned.DEFAULT_SHARE, gt=0, le=1)
    """``WARDEN_GUARD_LEARNED_CPU_SHARE``: the gated tier's CPU as a share of the guard's other work; 1 = no cap."""
    guard_learned_event_windows: int = Field(default=learned.DEFAULT_EVENT_WINDOWS, ge=0)
    """``WARDEN_GUARD_LEARNED_EVENT_WINDOWS``: windows the gated tier reads per event at most; 0 = no cap."""
    guard_text_cache_bytes: int = Field(default=memo.DEFAULT_BYTES, ge=0)
    """``WARDEN_GUARD_TEXT_CACHE_BYTES``: the memo of what the detectors found in recent texts; 0 = no memo."""


class GuardSettings(DetectorSettings):
    metrics_port: int = 9102
    """Port of the guard's ``/metrics`` in distributed mode."""
    agent_label_cap: int = 200
    """Distinct agent_id values used as a metrics label; later ones are counted under ``__other__``."""
