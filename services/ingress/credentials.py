"""The credential a request presents, and the one Warden sends upstream in its place.

Agents send a Warden key where their SDK sends the provider key: ``Authorization: Bearer`` (OpenAI and compatible
providers, and Azure's Entra ID tokens), ``x-api-key`` (Anthropic), ``x-goog-api-key`` or ``?key=`` (Gemini),
``api-key`` (Azure OpenAI). When Warden answers for the credential (a Warden key was presented), every credential
the client sent is dropped and the profile's stored provider credential is sent the way that provider expects it."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from services.ingress.signing import STORED_CREDENTIAL
from services.keyring.tokens import SECRET_PREFIX

CREDENTIAL_HEADERS = frozenset({b"authorization", b"x-api-key", b"x-goog-api-key", b"api-key"})
_CONFLICT = SECRET_PREFIX + "two-different-keys"
"""Stands for two different Warden keys in one request: malformed, refused like any bad key."""


@dataclass(frozen=True, slots=True)
class Presented:
    warden_key: str | None
    """The Warden key the request carries, if any."""
    provider_key: bool
    """It carries some other credential (a provider's key)."""


def _secret(name: bytes, value: bytes) -> str:
    text = value.decode("latin-1").strip()
    if name == b"authorization":
        scheme, _, token = text.partition(" ")
        if scheme.lower() == "bearer":
            return token.strip()
        if scheme.upper() == "AWS4-HMAC-SHA256":
            # An AWS SDK signs every request: a Warden key may stand as its access key id (``Credential=wk_…/…``).
            # The signature cannot be checked (Warden holds no secret for it): the key id is the credential.
            credential = token.partition("Credential=")[2]
            return credential.partition("/")[0].strip() or text
    return text


def presented(headers: list[tuple[bytes, bytes]], query: bytes) -> Presented:
    warden: str | None = None
    other = False
    found: list[str] = []
    for name, value in headers:
        if name in CREDENTIAL_HEADERS:
            found.append(_secret(name, value))
    if b"key=" in query:
        found.extend(value for name, value in parse_qsl(query.decode("latin-1")) if name == "key")
    for secret in found:
        if secret.startswith(SECRET_PREFIX):
            warden = secret if warden in (None, secret) else _CONFLICT
        elif secret:
            other = True
    return Presented(warden, other)


def credential_header(provider: str, secret: str) -> tuple[str, str]:
    """How ``provider`` takes its key: Anthropic's, Gemini's and Azure's own headers, a bearer token for OpenAI and
    every OpenAI-compatible provider."""
    if provider == "azure":
        return ("api-key", secret)
    if provider == "anthropic":
        return ("x-api-key", secret)
    if provider == "gemini":
        return ("x-goog-api-key", secret)
    if provider == "bedrock":
        return (STORED_CREDENTIAL, secret)  # AWS keys to sign with, or an API key: the signer decides and removes it
    return ("Authorization", f"Bearer {secret}")


def query_without_key(query: bytes) -> bytes:
    """The query string without its ``key`` parameters (the client's credential, replaced by Warden's)."""
    if b"key=" not in query:
        return query
    kept = [
        (name, value) for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True) if name != "key"
    ]
    return urlencode(kept).encode("latin-1")
