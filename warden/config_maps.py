"""The replicated state every Warden process holds: profiles, quarantine decisions, and, in the processes that need
them, the Warden keys, what the ingresses remember of the provider-held histories they relayed and the console's
logged-out sessions."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from plumbing.config.base import ReplicatedMap
from plumbing.config.factory import make_map
from plumbing.settings import CommonSettings
from schemas import topics
from schemas.keys import WardenKey
from schemas.profiles import Profile
from schemas.provider_history import HistoryBucket
from schemas.quarantine import Quarantine
from schemas.sessions import RevokedSession
from schemas.upstreams import Deployment, ModelAlias


@dataclass
class ConfigMaps:
    profiles: ReplicatedMap[Profile]
    quarantines: ReplicatedMap[Quarantine]
    history: ReplicatedMap[HistoryBucket] | None = None
    revoked_sessions: ReplicatedMap[RevokedSession] | None = None
    keys: ReplicatedMap[WardenKey] | None = None
    deployments: ReplicatedMap[Deployment] | None = None
    aliases: ReplicatedMap[ModelAlias] | None = None

    @classmethod
    def build(
        cls,
        settings: CommonSettings,
        *,
        history: bool = False,
        sessions: bool = False,
        keys: bool = False,
        routing: bool | None = None,
    ) -> ConfigMaps:
        """``history``: also the provider-history map (only the ingress needs it); ``sessions``: also the console's
        list of logged-out sessions (only processes that serve the console need it); ``keys``: also the Warden keys
        (the ingress checks them, the console issues them); ``routing``: also the deployments and model aliases
        (the ingress routes by them, the console writes them; by default with the keys)."""
        routing = keys if routing is None else routing
        return cls(
            profiles=make_map(settings, topics.PROFILES, Profile, "profiles"),
            quarantines=make_map(settings, topics.QUARANTINES, Quarantine, "quarantines"),
            history=make_map(settings, topics.PROVIDER_HISTORY, HistoryBucket, "provider-history") if history else None,
            revoked_sessions=(
                make_map(settings, topics.REVOKED_SESSIONS, RevokedSession, "revoked-sessions") if sessions else None
            ),
            keys=make_map(settings, topics.KEYS, WardenKey, "keys") if keys else None,
            deployments=make_map(settings, topics.DEPLOYMENTS, Deployment, "deployments") if routing else None,
            aliases=make_map(settings, topics.MODEL_ALIASES, ModelAlias, "model-aliases") if routing else None,
        )

    def _maps(self) -> list[ReplicatedMap[Any]]:
        optional = (self.history, self.revoked_sessions, self.keys, self.deployments, self.aliases)
        return [self.profiles, self.quarantines, *(m for m in optional if m is not None)]

    async def start(self) -> None:
        """Returns at once: each map serves its last known copy and catches up in the background."""
        for replicated in self._maps():
            await replicated.start()

    async def refresh(self) -> None:
        """Read the shared files again now (embedded, several processes); other maps follow their topic anyway."""
        for replicated in self._maps():
            refresh = getattr(replicated, "refresh", None)
            if refresh is not None:
                await refresh(wait=True)

    async def stop(self) -> None:
        # At once: with the broker away each waits out its own bounded shutdown.
        await asyncio.gather(*(m.stop() for m in self._maps()))
