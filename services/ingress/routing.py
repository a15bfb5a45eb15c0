"""Splits an ingress path into provider, profile and the upstream path."""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_PROFILE_ID = "default"

_PROFILE_SEGMENT = re.compile(
    r"^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|default)$"
)


@dataclass(frozen=True, slots=True)
class Route:
    provider: str
    profile_id: str
    upstream_path: str
    """The path after the provider (and the profile segment, if any), starting with '/'."""
    explicit_profile: bool


def parse(path: str) -> Route | None:
    """``/v1/{provider}[/{profile_id}]/{rest}`` → Route; None when the path is not under ``/v1/{provider}/``."""
    if not path.startswith("/v1/"):
        return None
    parts = path[4:].split("/", 2)
    provider = parts[0]
    if not provider or len(parts) < 2:
        return None
    if _PROFILE_SEGMENT.match(parts[1]):
        rest = "/" + parts[2] if len(parts) > 2 else "/"
        return Route(provider, parts[1].lower(), rest, True)
    return Route(provider, DEFAULT_PROFILE_ID, "/" + "/".join(parts[1:]), False)
