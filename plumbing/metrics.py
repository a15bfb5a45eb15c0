"""Prometheus helpers shared by the services."""

from __future__ import annotations

OVERFLOW_LABEL = "__other__"
LABEL_MAX_CHARS = 128
"""Longest label value kept; the attribution headers allow 128 characters, model names are far shorter."""


class LabelCap:
    """Bounds one label: values are cut to ``max_chars`` characters, the first ``cap`` distinct values seen are kept,
    later ones fold into ``__other__``. Every series' size and number is then bounded whatever the clients send (a
    model name is whatever the request body says)."""

    def __init__(self, cap: int, max_chars: int = LABEL_MAX_CHARS) -> None:
        self._cap = cap
        self._max_chars = max_chars
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if len(value) > self._max_chars:
            value = value[: self._max_chars]
        if value in self._seen:
            return value
        if len(self._seen) < self._cap:
            self._seen.add(value)
            return value
        return OVERFLOW_LABEL
