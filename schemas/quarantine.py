"""Quarantine decisions: an agent refused by every ingress until the decision expires or is lifted."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, field_validator


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

    @field_validator("created_at", "expires_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # Naive times are UTC by convention; with their zone they compare safely and are shown with a ``Z``.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @property
    def key(self) -> str:
        return quarantine_key(self.profile_id, self.agent_id)

    def active(self, now: datetime) -> bool:
        return now < self.expires_at
