"""The replicated configuration every Warden process holds: profiles and quarantine decisions."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from plumbing.config.base import ReplicatedMap
from plumbing.config.factory import make_map
from plumbing.settings import CommonSettings
from schemas import topics
from schemas.profiles import Profile
from schemas.quarantine import Quarantine
from schemas.sessions import RevokedSession


@dataclass
class ConfigMaps:
    profiles: ReplicatedMap[Profile]
    quarantines: ReplicatedMap[Quarantine]

    @classmethod
    def build(cls, settings: CommonSettings) -> ConfigMaps:
        return cls(
            profiles=make_map(settings, topics.PROFILES, Profile, "profiles"),
            quarantines=make_map(settings, topics.QUARANTINES, Quarantine, "quarantines"),
        )

    async def start(self) -> None:
        """Returns at once: each map serves its last known copy and catches up in the background."""
        await self.profiles.start()
        await self.quarantines.start()

    async def stop(self) -> None:
        # At once: with the broker away each waits out its own bounded shutdown.
        await asyncio.gather(self.quarantines.stop(), self.profiles.stop())


def revoked_sessions(settings: CommonSettings) -> ReplicatedMap[RevokedSession]:
    """The console's list of logged-out sessions; only processes that serve the console hold it."""
    return make_map(settings, topics.REVOKED_SESSIONS, RevokedSession, "revoked-sessions")
