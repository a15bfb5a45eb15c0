"""Reading parsed JSON bodies in tests: every string in them, and their shape with the strings blanked."""

from __future__ import annotations

from typing import Any


def strings(value: Any) -> list[str]:
    """Every string value, depth first (object keys excluded)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return []


def shape(value: Any) -> Any:
    """The body with every string blanked: what must not change when secrets are masked."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return "" if isinstance(value, str) else value
