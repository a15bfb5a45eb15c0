"""Quarantine decisions: an agent refused by every ingress until the decision expires or is lifted."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


def quarantine_key(profile_id: str, agent_id: str) -> str:
    return f"{profile_id}:{agent_id}"


class Quarantine(BaseModel):
    profile_id: str
    agent_id: str
    reason: str
    created_at: datetime
    expires_at: datetime
    violations: list[str] = []
    """The violation ids that tripped the rule."""

    @property
    def key(self) -> str:
        return quarantine_key(self.profile_id, self.agent_id)

    def active(self, now: datetime) -> bool:
        return now < self.expires_at
