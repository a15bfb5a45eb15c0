"""The profiles the hot path reads: an in-memory snapshot, with the built-in default always present.

A profile is referred to by its id (a UUID, any case), ``default``, or its name: a name that exactly one profile
carries, compared case-sensitively. A name two profiles share refers to neither (their ids still do).
"""

from __future__ import annotations

import uuid

from plumbing.config.base import ReplicatedMap
from schemas.profiles import DEFAULT_PROFILE_ID, Profile, default_profile


class ProfileSnapshot:
    def __init__(self, profiles: ReplicatedMap[Profile]) -> None:
        self._profiles = profiles
        self._default = default_profile()
        self._names: dict[str, str | None] | None = None  # name -> id (None: ambiguous); rebuilt after a change
        profiles.listen(self._changed)

    def _changed(self, key: str, value: object) -> None:
        self._names = None

    def get(self, profile_id: str) -> Profile | None:
        """The profile with this id (``default`` included)."""
        profile = self._profiles.get(profile_id)
        if profile is None and profile_id == DEFAULT_PROFILE_ID:
            return self._default
        return profile

    def resolve(self, reference: str) -> Profile | None:
        """The profile a URL segment refers to: by id, else by unique name; None when it refers to none."""
        # Ids are stored in canonical form: one lookup finds them as sent; only another spelling is parsed.
        profile = self.get(reference)
        if profile is None and len(reference) == 36:
            profile = self.get(_canonical_id(reference))
        if profile is not None:
            return profile
        names = self._names
        if names is None:
            names = {}
            for candidate in self._profiles.values():
                names[candidate.name] = None if candidate.name in names else candidate.id
            self._names = names
        profile_id = names.get(reference)
        return self.get(profile_id) if profile_id is not None else None

    __call__ = resolve


def _canonical_id(reference: str) -> str:
    try:
        return str(uuid.UUID(reference))
    except ValueError:
        return reference
