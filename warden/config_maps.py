"""The replicated state every Warden process holds: profiles, quarantine decisions, and what the ingresses remember
of the provider-held histories they relayed."""

from __future__ import annotations

from dataclasses import dataclass

from plumbing.config.base import ReplicatedMap
from plumbing.config.factory import make_map
from plumbing.settings import CommonSettings
from schemas import topics
from schemas.profiles import Profile
from schemas.provider_history import HistoryBucket
from schemas.quarantine import Quarantine


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
        await self.profiles.start()
        await self.quarantines.start()
        if self.history is not None:
            await self.history.start()

    async def stop(self) -> None:
        if self.history is not None:
            await self.history.stop()
        await self.quarantines.stop()
        await self.profiles.stop()
