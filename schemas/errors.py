"""Warden's own JSON error body: what the console, its API and the HTTP limits answer when they refuse a request.

The ingress answers in each provider's own error shape instead (``ProviderAdapter.error_body``), so a client's SDK
raises its usual error; this shape is the one for clients of Warden itself.
"""

from __future__ import annotations


def error_json(message: str, kind: str) -> dict[str, dict[str, str]]:
    """``{"error": {"message": …, "type": …}}``; ``kind`` is short and machine-readable, e.g. ``not_found_error``."""
    return {"error": {"message": message, "type": kind}}
