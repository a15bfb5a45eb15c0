"""The replicated state every Warden process holds: profiles, quarantine decisions, and what the ingresses remember
of the provider-held histories they relayed."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from plumbing.config.base import ReplicatedMap
from plumbing.config.factory import make_map
from plumbing.settings import CommonSettings
from schemas import topics
from schemas.profiles import Profile
from schemas.provider_history import HistoryBucket
from schemas.quarantine import Quarantine
from schemas.sessions import RevokedSession


@dataclass
class ConfigMaps:
    profiles: ReplicatedMap[Profile]
    quarantines: ReplicatedMap[Quarantine]
    history: ReplicatedMap[HistoryBucket] | None = None

    @classmethod
    def build(cls, settings: CommonSettings, *, history: bool = False) -> ConfigMaps:
        """``history``: also the provider-history map (only the ingress needs it)."""
        return cls(
            profiles=make_map(settings, topics.PROFILES, Profile, "profiles"),
            quarantines=make_map(settings, topics.QUARANTINES, Quarantine, "quarantines"),
            history=make_map(settings, topics.PROVIDER_HISTORY, HistoryBucket, "provider-history") if history else None,
        )

    async def start(self) -> None:
        """Returns at once: each map serves its last known copy and catches up in the background."""
        await self.profiles.start()
        await self.quarantines.start()
        if self.history is not None:
            await self.history.start()

    async def stop(self) -> None:
        # At once: with the broker away each waits out its own bounded shutdown.
        maps = [self.quarantines, self.profiles, *([self.history] if self.history is not None else [])]
        await asyncio.gather(*(m.stop() for m in maps))


def revoked_sessions(settings: CommonSettings) -> ReplicatedMap[RevokedSession]:
    """The console's list of logged-out sessions; only processes that serve the console hold it."""
    return make_map(settings, topics.REVOKED_SESSIONS, RevokedSession, "revoked-sessions")
