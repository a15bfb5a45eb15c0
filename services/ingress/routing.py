"""Splits an ingress path into provider, profile and the upstream path.

The segment after the provider is a profile reference (an id, ``default`` or a profile's name) unless it is one of
the provider's own top-level path segments (``chat``, ``responses``, ``v1beta``…): then there is no profile segment
and the default profile applies. A reference that names no profile is answered 404 by the ingress, never served by
the default profile.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from schemas.profiles import DEFAULT_PROFILE_ID


@dataclass(frozen=True, slots=True)
class Route:
    provider: str
    profile_id: str
    """The profile reference as the path gives it (an id, ``default`` or a name)."""
    upstream_path: str
    """The path after the provider (and the profile segment, if any), starting with '/'."""
    named: bool = True
    """The path names its profile (False: no profile segment, the default profile or the Warden key's applies)."""


def _no_paths(provider: str) -> Collection[str]:
    return ()


def parse(path: str, provider_paths: Callable[[str], Collection[str]] = _no_paths) -> Route | None:
    """``/v1/{provider}[/{profile}]/{rest}`` → Route; None when the path is not under ``/v1/{provider}/``.
    ``provider_paths(provider)``: the top-level path segments of that provider's API."""
    if not path.startswith("/v1/"):
        return None
    parts = path[4:].split("/", 2)
    provider = parts[0]
    if not provider or len(parts) < 2:
        return None
    if parts[1] in provider_paths(provider):
        return Route(provider, DEFAULT_PROFILE_ID, "/" + "/".join(parts[1:]), named=False)
    rest = "/" + parts[2] if len(parts) > 2 else "/"
    return Route(provider, parts[1], rest)
