"""The Warden keys admin API (``/api/keys``): make a key (its secret is in that answer and nowhere else, ever), list
and read keys (by prefix, never a secret or a hash), rotate one (the old secret stays valid for a grace period),
revoke one (every ingress refuses it within moments)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from plumbing.config.base import ReplicatedMap
from plumbing.keyring import Keyring
from schemas.errors import error_json
from schemas.keys import KeySecret, KeySpec, WardenKey
from schemas.profiles import DEFAULT_PROFILE_ID, Profile
from services.console.validation import read_model
from services.keyring.tokens import display_prefix, new_secret

DEFAULT_GRACE_S = 3600
MAX_GRACE_S = 30 * 24 * 3600
_NO_STORE = {"Cache-Control": "no-store"}
"""An answer carrying a secret is kept by no cache."""
M = TypeVar("M", bound=BaseModel)
NO_MASTER_KEY = "WARDEN_MASTER_KEY is not set: Warden keys cannot be issued (make one with `warden keys master-key`)"


class Rotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_seconds: int = Field(default=DEFAULT_GRACE_S, ge=0, le=MAX_GRACE_S)
    """How long the replaced secret keeps working."""


def _error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse(error_json(message, kind), status_code=status)


def issue(keyring: Keyring) -> tuple[str, KeySecret]:
    secret = new_secret()
    return secret, KeySecret(digest=keyring.digest(secret).hex(), prefix=display_prefix(secret))


class KeysApi:
    def __init__(
        self, keys: ReplicatedMap[WardenKey], profiles: ReplicatedMap[Profile], keyring: Keyring | None
    ) -> None:
        self.keys = keys
        self.profiles = profiles
        self.keyring = keyring

    async def _body(self, request: Request, model: type[M]) -> M | Response:
        """The request's JSON body as ``model`` (an empty body is ``{}``), or the answer saying what is wrong."""
        return await read_model(request, model)

    async def create(self, request: Request) -> Response:
        if self.keyring is None:
            return _error(503, NO_MASTER_KEY, "api_error")
        spec = await self._body(request, KeySpec)
        if isinstance(spec, Response):
            return spec
        if spec.profile_id != DEFAULT_PROFILE_ID and self.profiles.get(spec.profile_id) is None:
            return _error(422, f"profile_id: no profile {spec.profile_id}", "validation_error")
        now = datetime.now(UTC)
        key_id = str(uuid.uuid4())
        secret, stored = issue(self.keyring)
        key = WardenKey(**spec.model_dump(), id=key_id, created_at=now, updated_at=now, secrets=[stored])
        await self.keys.put(key.id, key)
        return JSONResponse({**key.public(now), "secret": secret}, status_code=201, headers=_NO_STORE)

    async def list_keys(self, request: Request) -> Response:
        now = datetime.now(UTC)
        profile_id = request.query_params.get("profile_id")
        include_revoked = request.query_params.get("include_revoked") == "true"
        items = [
            k
            for k in self.keys.values()
            if (profile_id is None or k.profile_id == profile_id) and (include_revoked or k.revoked_at is None)
        ]
        items.sort(key=lambda k: k.created_at, reverse=True)
        return JSONResponse({"items": [k.public(now) for k in items]})

    def _get(self, request: Request) -> WardenKey | None:
        return self.keys.get(request.path_params["key_id"])

    async def read(self, request: Request) -> Response:
        key = self._get(request)
        if key is None:
            return _error(404, "no such key", "not_found_error")
        return JSONResponse(key.public(datetime.now(UTC)))

    async def rotate(self, request: Request) -> Response:
        if self.keyring is None:
            return _error(503, NO_MASTER_KEY, "api_error")
        key = self._get(request)
        if key is None:
            return _error(404, "no such key", "not_found_error")
        if key.revoked_at is not None:
            return _error(409, "a revoked key cannot be rotated", "invalid_request_error")
        rotation = await self._body(request, Rotation)
        if isinstance(rotation, Response):
            return rotation
        now = datetime.now(UTC)
        until = now + timedelta(seconds=rotation.grace_seconds)
        secret, stored = issue(self.keyring)
        # Every earlier secret ends by the new grace period's end (sooner when its own ends sooner).
        previous = [
            s.model_copy(update={"valid_until": until if s.valid_until is None else min(s.valid_until, until)})
            for s in key.secrets
        ]
        kept = [s for s in previous if s.valid_until is not None and s.valid_until > now]
        rotated = key.model_copy(update={"secrets": [stored, *kept], "updated_at": now})
        await self.keys.put(rotated.id, rotated)
        return JSONResponse({**rotated.public(now), "secret": secret}, headers=_NO_STORE)

    async def revoke(self, request: Request) -> Response:
        key = self._get(request)
        if key is None:
            return _error(404, "no such key", "not_found_error")
        if key.revoked_at is None:
            now = datetime.now(UTC)
            await self.keys.put(key.id, key.model_copy(update={"revoked_at": now, "updated_at": now}))
        return Response(status_code=204)

    def routes(self) -> list[Route]:
        return [
            Route("/api/keys", self.list_keys, methods=["GET"]),
            Route("/api/keys", self.create, methods=["POST"]),
            Route("/api/keys/{key_id}", self.read, methods=["GET"]),
            Route("/api/keys/{key_id}", self.revoke, methods=["DELETE"]),
            Route("/api/keys/{key_id}/rotate", self.rotate, methods=["POST"]),
        ]
