"""Warden keys and managed profiles for tests, made through the admin API."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

PROVIDER_KEYS = {
    "openai": "sk-proj-stored" + "A1b2C3d4E5f6G7h8I9j0",
    "anthropic": "sk-ant-api03-stored" + "K1l2M3n4O5p6Q7r8S9t0",
    "gemini": "AIzaSy" + "StoredGeminiKey0123456789abcdefgh",
}
"""The provider credentials the tests store in profiles (made up, each in its provider's shape)."""


@dataclass
class Key:
    id: str
    secret: str
    prefix: str
    agent_id: str
    profile_id: str


def create_profile(warden, *, auth: str = "managed", credentials: dict[str, Any] | None = None, **spec: Any) -> str:
    body = {"name": f"keys-{uuid.uuid4().hex[:8]}", "auth": auth, "credentials": credentials or PROVIDER_KEYS, **spec}
    response = httpx.post(f"{warden.url}/api/profiles", json=body, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def create_key(warden, profile_id: str, agent_id: str, **spec: Any) -> Key:
    response = httpx.post(
        f"{warden.url}/api/keys", json={"profile_id": profile_id, "agent_id": agent_id, **spec}, timeout=10
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return Key(body["id"], body["secret"], body["prefix"], agent_id, profile_id)


def rotate(warden, key: Key, grace_seconds: int) -> Key:
    response = httpx.post(f"{warden.url}/api/keys/{key.id}/rotate", json={"grace_seconds": grace_seconds}, timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    return Key(key.id, body["secret"], body["prefix"], key.agent_id, key.profile_id)


def revoke(warden, key: Key) -> None:
    response = httpx.delete(f"{warden.url}/api/keys/{key.id}", timeout=10)
    assert response.status_code == 204, response.text
