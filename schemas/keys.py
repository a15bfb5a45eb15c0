"""Warden keys: issued by an admin, held by an agent, checked by every ingress.

A key binds the profile its requests go through and the agent id they are recorded under (optionally a user id, an
expiry, the providers and models it may use). Its secret is shown once, when it is made; Warden stores only its
keyed hash (``services/keyring``) and the prefix it is listed by. Rotating a key gives it a new secret and keeps the
old one valid for a grace period; revoking it ends every secret at once.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator

ATTRIBUTION_MAX_LENGTH = 128
ATTRIBUTION_VALUE = re.compile(r"^[A-Za-z0-9._:@+/=-]+$")
"""What an attribution value (agent, user, session id) may be: the headers' rules, and a key's bindings'."""


def _attribution_value(value: str) -> str:
    if value and not ATTRIBUTION_VALUE.match(value):
        raise ValueError("may only contain letters, digits and . _ : @ + / = -")
    return value


AttributionValue = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=ATTRIBUTION_MAX_LENGTH), AfterValidator(_attribution_value)
]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcTime = Annotated[datetime, AfterValidator(_utc)]


class KeySpec(BaseModel):
    """What an admin writes when making a key."""

    model_config = ConfigDict(extra="forbid")

    profile_id: str = Field(min_length=1, max_length=100)
    """The profile (id or ``default``) every request made with the key goes through."""
    agent_id: Annotated[AttributionValue, Field(min_length=1)]
    """The agent the key's requests are recorded (and quarantined) as."""
    user_id: AttributionValue = ""
    """When set, the user the requests are recorded for (an ``X-Archestra-User-Id`` naming another is refused);
    when empty, the header may say."""
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] = ""
    expires_at: UtcTime | None = None
    providers: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(default_factory=list)
    """Provider slugs the key may call; empty: every one."""
    models: list[Annotated[str, StringConstraints(min_length=1, max_length=256)]] = Field(default_factory=list)
    """Models the key may ask for; empty: every one."""


class KeySecret(BaseModel):
    """One secret of a key, as stored: its keyed hash and its prefix, never the secret."""

    digest: str
    """HMAC-SHA256 of the secret under the master key, hex."""
    prefix: str
    valid_until: UtcTime | None = None
    """None for the current secret; the end of the grace period for one replaced by a rotation."""


class WardenKey(KeySpec):
    id: str
    created_at: UtcTime
    updated_at: UtcTime
    secrets: list[KeySecret]
    """The current secret first, then those a rotation replaced and still in their grace period."""
    revoked_at: UtcTime | None = None

    @field_validator("id")
    @classmethod
    def _uuid(cls, value: str) -> str:
        return str(uuid.UUID(value))

    @property
    def prefix(self) -> str:
        return self.secrets[0].prefix

    def refusal(self, secret: KeySecret, now: datetime) -> str | None:
        """Why ``secret`` of this key may not be used at ``now`` (a metrics reason); None when it may."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        if secret.valid_until is not None and now >= secret.valid_until:
            return "rotated"
        return None

    def public(self, now: datetime) -> dict:
        """What the API and the page show of it: everything but the hashes."""
        out = self.model_dump(mode="json", exclude={"secrets"})
        out["prefix"] = self.prefix
        out["previous_prefixes"] = [
            {"prefix": s.prefix, "valid_until": s.valid_until.isoformat() if s.valid_until else None}
            for s in self.secrets[1:]
            if s.valid_until is not None and now < s.valid_until
        ]
        out["state"] = self.state(now)
        return out

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"
