"""Prometheus helpers shared by the services."""

from __future__ import annotations

OVERFLOW_LABEL = "__other__"


class LabelCap:
    """Caps the distinct values of one label: the first ``cap`` values seen are kept, later ones fold into
    ``__other__``, so a flood of ids cannot blow up the metrics."""

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) < self._cap:
            self._seen.add(value)
            return value
        return OVERFLOW_LABEL
