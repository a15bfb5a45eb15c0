"""The profiles the hot path reads: an in-memory snapshot, with the built-in default always present."""

from __future__ import annotations

from plumbing.config.base import ReplicatedMap
from schemas.profiles import DEFAULT_PROFILE_ID, Profile, default_profile


class ProfileSnapshot:
    def __init__(self, profiles: ReplicatedMap[Profile]) -> None:
        self._profiles = profiles
        self._default = default_profile()

    def get(self, profile_id: str) -> Profile | None:
        profile = self._profiles.get(profile_id)
        if profile is None and profile_id == DEFAULT_PROFILE_ID:
            return self._default
        return profile

    __call__ = get
