"""AWS SigV4 for the Bedrock upstream: Warden holds the AWS credentials and signs each forwarded request with
botocore's own signer (service ``bedrock``, the configured region).

Which credential a request goes upstream with:

- a Warden key (sent as a Bedrock API key, ``Authorization: Bearer wk_…``, or as the access key id of a SigV4
  signature): the profile's stored ``bedrock`` credential (a Bedrock API key, sent as a bearer token, or a JSON object
  ``{"access_key_id", "secret_access_key", "session_token"?}`` signed with), else Warden's own (``WARDEN_BEDROCK_*``
  settings, else botocore's default chain: environment, shared files, instance or container role);
- the client's own Bedrock API key (``Authorization: Bearer …``) in a passthrough profile: forwarded unchanged;
- a client's own SigV4 signature: refused before this point (``BedrockAdapter.unforwardable_credential``), since
  the signature covers Warden's host and path and cannot be forwarded, and Warden cannot verify it.

The secret, the session token and the signed headers are never logged nor recorded.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials
from botocore.session import get_session
from yarl import URL

SERVICE = "bedrock"
STORED_CREDENTIAL = "x-warden-stored-credential"
"""Carries the profile's stored credential from the gate to the signer, which removes it: never sent upstream."""
_CLIENT_SIGNATURE = frozenset({"authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256"})
"""What a client's own signature adds to a request: dropped whenever Warden signs instead."""


class _NoSigningDetails(logging.Filter):
    """botocore's signer writes the canonical request (its headers, a session token among them) and the signature at
    DEBUG: those records are dropped, whatever the logging configuration."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg if isinstance(record.msg, str) else ""
        return not message.startswith(("CanonicalRequest", "StringToSign", "Signature"))


logging.getLogger("botocore.auth").addFilter(_NoSigningDetails())


class NoAwsCredentials(Exception):
    """Warden holds no AWS credentials to sign with."""


@dataclass(frozen=True, slots=True)
class StoredAwsKeys:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


def read_stored(secret: str) -> StoredAwsKeys | str:
    """A stored ``bedrock`` credential (a profile's or a deployment's): AWS keys (a JSON object), or a Bedrock API key
    (any other text)."""
    if not secret.lstrip().startswith("{"):
        return secret
    try:
        found = orjson.loads(secret)
        return StoredAwsKeys(
            str(found["access_key_id"]), str(found["secret_access_key"]), found.get("session_token") or None
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        # Meant as AWS keys, and not them: refused rather than sent anywhere as something else.
        raise NoAwsCredentials(
            "the stored bedrock credential is a JSON object but not AWS keys (access_key_id, secret_access_key)"
        ) from None


_BEDROCK_HOST = re.compile(r"^bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")


def bedrock_region_of(base_url: str) -> str | None:
    """The AWS region a Bedrock runtime endpoint's host names (``bedrock-runtime.<region>.amazonaws.com``); None
    for any other host (a proxy, a private endpoint), which is signed for the configured region."""
    host = urlsplit(base_url).hostname or ""
    found = _BEDROCK_HOST.match(host)
    return found.group(1) if found else None


class BedrockSigner:
    def __init__(self, region: str, credentials: Credentials | None = None) -> None:
        """``credentials``: Warden's own; None: botocore's default chain, looked up when first needed."""
        self.region = region
        self._credentials = credentials
        self._looked_up = credentials is not None

    async def _own(self) -> ReadOnlyCredentials:
        if not self._looked_up:
            # The chain may ask an instance metadata service over the network: off the event loop.
            self._credentials = await asyncio.to_thread(get_session().get_credentials)
            self._looked_up = True
        if self._credentials is None:
            raise NoAwsCredentials(
                "Warden holds no AWS credentials for Bedrock (set WARDEN_BEDROCK_ACCESS_KEY_ID and "
                "WARDEN_BEDROCK_SECRET_ACCESS_KEY, or give the profile a bedrock credential)"
            )
        # Refreshable credentials (a role) may refresh here, which is network I/O too.
        return await asyncio.to_thread(self._credentials.get_frozen_credentials)

    async def sign(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        credential: tuple[tuple[str, str], ...] | None,
    ) -> tuple[URL, list[tuple[str, str]]]:
        """The request target and headers to send. ``credential``: the gate's (None: the client's own credential
        passes, which Warden does not sign over; else Warden answers for it)."""
        target = URL(url, encoded=True)  # sent as signed: the client's percent-encodings kept
        stored = next((value for name, value in credential or () if name == STORED_CREDENTIAL), None)
        headers = [(name, value) for name, value in headers if name.lower() != STORED_CREDENTIAL]
        if credential is None:
            return target, headers
        headers = [(name, value) for name, value in headers if name.lower() not in _CLIENT_SIGNATURE]
        keys = read_stored(stored) if stored is not None else None
        if isinstance(keys, str):
            return target, [*headers, ("Authorization", f"Bearer {keys}")]
        signing = (
            Credentials(keys.access_key_id, keys.secret_access_key, keys.session_token)
            if keys is not None
            else await self._own()
        )
        request = AWSRequest(method=method, url=url, data=body or b"", headers=dict(headers))
        SigV4Auth(signing, SERVICE, self.region).add_auth(request)
        return target, list(request.headers.items())
