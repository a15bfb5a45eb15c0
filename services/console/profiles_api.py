"""The profiles admin API: ``/api/profiles`` (DESIGN §6). Every answer carries the profile's connect URLs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import orjson
from pydantic import SecretStr, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from plumbing.config.base import ReplicatedMap
from plumbing.keyring import Keyring
from schemas.errors import error_json
from schemas.profiles import DEFAULT_PROFILE_ID, Profile, ProfileSpec, default_profile, new_profile
from services.console.validation import validation_message


def connect_urls(public_url: str, providers: list[str], profile_id: str) -> dict[str, str]:
    base = public_url.rstrip("/")
    return {provider: f"{base}/v1/{provider}/{profile_id}" for provider in providers}


def _error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse(error_json(message, kind), status_code=status)


def unknown_endpoint(spec: ProfileSpec, providers: list[str]) -> str | None:
    """What is wrong with a write's endpoints: a provider slug that is not configured (a typo would go unnoticed)."""
    for provider in spec.endpoints:
        if provider not in providers:
            return f"endpoints: {provider} is not a configured provider ({', '.join(providers)})"
    return None


def stored_credentials(
    current: dict[str, str], changes: ProfileSpec, keyring: Keyring | None, providers: list[str]
) -> dict[str, str] | str:
    """The encrypted credentials after a write's changes (a new secret is encrypted, null removes, ``{"set": true}``
    or leaving a provider out keeps); or what is wrong with them."""
    out = dict(current)
    for provider, change in changes.credentials.items():
        if provider not in providers:
            return f"credentials: {provider} is not a configured provider ({', '.join(providers)})"
        if change is None:
            out.pop(provider, None)
        elif isinstance(change, SecretStr):
            if keyring is None:
                return "credentials: WARDEN_MASTER_KEY is not set, so provider credentials cannot be stored"
            out[provider] = keyring.encrypt(change.get_secret_value())
        elif provider not in out:
            return f"credentials: {provider} has no stored credential to keep"
    return out


class ProfilesApi:
    def __init__(
        self,
        profiles: ReplicatedMap[Profile],
        public_url: Callable[[], str],
        providers: Callable[[], list[str]],
        keyring: Keyring | None = None,
    ) -> None:
        self.profiles = profiles
        self.public_url = public_url
        self.providers = providers
        self.keyring = keyring

    def present(self, profile: Profile) -> dict:
        out = profile.model_dump(mode="json", exclude={"credentials"})
        out["credentials"] = {provider: {"set": True} for provider in profile.credentials}  # never the secret
        out["connect_urls"] = connect_urls(self.public_url(), self.providers(), profile.id)
        return out

    def _get(self, profile_id: str) -> Profile | None:
        profile = self.profiles.get(profile_id)
        if profile is None and profile_id == DEFAULT_PROFILE_ID:
            return default_profile()
        return profile

    async def _spec(self, request: Request) -> ProfileSpec | Response:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            return _error(400, f"the body is not valid JSON: {exc}", "invalid_request_error")
        try:
            return ProfileSpec.model_validate(body)
        except ValidationError as exc:
            return _error(422, validation_message(exc), "validation_error")

    async def list_profiles(self, _: Request) -> Response:
        items = {p.id: p for p in self.profiles.values()}
        items.setdefault(DEFAULT_PROFILE_ID, default_profile())
        ordered = sorted(items.values(), key=lambda p: (p.id != DEFAULT_PROFILE_ID, p.created_at))
        return JSONResponse({"items": [self.present(p) for p in ordered]})

    async def create(self, request: Request) -> Response:
        spec = await self._spec(request)
        if isinstance(spec, Response):
            return spec
        credentials = unknown_endpoint(spec, self.providers()) or stored_credentials(
            {}, spec, self.keyring, self.providers()
        )
        if isinstance(credentials, str):
            return _error(422, credentials, "validation_error")
        profile = new_profile(spec, credentials=credentials)
        await self.profiles.put(profile.id, profile)
        return JSONResponse(self.present(profile), status_code=201)

    async def read(self, request: Request) -> Response:
        profile = self._get(request.path_params["profile_id"])
        if profile is None:
            return _error(404, "no such profile", "not_found_error")
        return JSONResponse(self.present(profile))

    async def update(self, request: Request) -> Response:
        profile = self._get(request.path_params["profile_id"])
        if profile is None:
            return _error(404, "no such profile", "not_found_error")
        spec = await self._spec(request)
        if isinstance(spec, Response):
            return spec
        credentials = unknown_endpoint(spec, self.providers()) or stored_credentials(
            profile.credentials, spec, self.keyring, self.providers()
        )
        if isinstance(credentials, str):
            return _error(422, credentials, "validation_error")
        updated = profile.with_spec(spec, credentials=credentials, now=datetime.now(UTC))
        await self.profiles.put(updated.id, updated)
        return JSONResponse(self.present(updated))

    async def delete(self, request: Request) -> Response:
        profile_id = request.path_params["profile_id"]
        if profile_id == DEFAULT_PROFILE_ID:
            return _error(409, "the default profile cannot be deleted (it can be updated)", "invalid_request_error")
        if not await self.profiles.delete(profile_id):
            return _error(404, "no such profile", "not_found_error")
        return Response(status_code=204)

    def routes(self) -> list[Route]:
        return [
            Route("/api/profiles", self.list_profiles, methods=["GET"]),
            Route("/api/profiles", self.create, methods=["POST"]),
            Route("/api/profiles/{profile_id}", self.read, methods=["GET"]),
            Route("/api/profiles/{profile_id}", self.update, methods=["PUT"]),
            Route("/api/profiles/{profile_id}", self.delete, methods=["DELETE"]),
        ]
