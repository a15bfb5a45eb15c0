"""Console login sessions: what the login cookie holds instead of the admin token.

A session is ``<id>.<expiry>.<signature>``: a random id, its expiry (Unix seconds) and an HMAC-SHA256 over both, keyed
by a key derived from the admin token. Any console process with the same admin token verifies it without shared
state, so sessions work across processes in distributed mode; changing the admin token ends every session. A logout
revokes one session everywhere by putting its id in the replicated configuration until the session would have
expired anyway (so the list holds only sessions that are still running).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import UTC, datetime

from pydantic import SecretStr

from plumbing.config.base import ReplicatedMap
from schemas.sessions import RevokedSession

_KEY_CONTEXT = b"warden console session v1"


class Sessions:
    def __init__(self, token: SecretStr, ttl_s: float, revoked: ReplicatedMap[RevokedSession]) -> None:
        # A derived key, not the token itself: a session says nothing about the token.
        self._key = hmac.new(token.get_secret_value().encode(), _KEY_CONTEXT, hashlib.sha256).digest()
        self.ttl_s = ttl_s
        self.revoked = revoked
        self._ended_here: dict[str, float] = {}
        """Sessions this process revoked, by expiry: refused at once, before the replicated list has them back."""

    def _sign(self, session_id: str, expires: int) -> str:
        mac = hmac.new(self._key, f"{session_id}.{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def issue(self, now: float) -> str:
        """A new session, valid for ``ttl_s`` seconds from ``now`` (Unix seconds)."""
        session_id = secrets.token_urlsafe(16)
        expires = int(now + self.ttl_s)
        return f"{session_id}.{expires}.{self._sign(session_id, expires)}"

    def verify(self, value: str | None, now: float) -> str | None:
        """The session's id when ``value`` is a session this key issued, not expired and not revoked; else None."""
        if not value:
            return None
        parts = value.split(".")
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        session_id, expires_text, signature = parts
        if not hmac.compare_digest(signature.encode(), self._sign(session_id, int(expires_text)).encode()):
            return None
        if int(expires_text) <= now or session_id in self._ended_here or self.revoked.get(session_id) is not None:
            return None
        return session_id

    async def revoke(self, value: str | None, now: float) -> bool:
        """End the session ``value`` on every process; False when it was not a running session."""
        session_id = self.verify(value, now)
        if session_id is None:
            return False
        expiry = int(value.split(".")[1])  # type: ignore[union-attr]
        self._ended_here = {sid: at for sid, at in self._ended_here.items() if at > now}
        self._ended_here[session_id] = expiry
        await self.revoked.put(
            session_id, RevokedSession(session_id=session_id, expires_at=datetime.fromtimestamp(expiry, UTC))
        )
        # Entries of sessions that have expired by now say nothing any more: drop them.
        moment = datetime.fromtimestamp(now, UTC)
        for entry in self.revoked.values():
            if entry.expires_at <= moment:
                await self.revoked.delete(entry.session_id)
        return True
