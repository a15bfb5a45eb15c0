"""A revoked console login session: kept in the replicated configuration until the session would have expired, so
every console process refuses it after a logout on any of them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class RevokedSession(BaseModel):
    session_id: str
    expires_at: datetime
    """When the session would have ended anyway; after it the entry is dropped."""
