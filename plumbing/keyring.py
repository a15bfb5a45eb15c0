"""The operator's master key (``WARDEN_MASTER_KEY``): it encrypts provider credentials at rest and keys the hash
Warden keys are stored as.

``WARDEN_MASTER_KEY`` holds one or more Fernet keys separated by commas, the newest first. Credentials are encrypted
with the first and decrypted with any (``MultiFernet``), so a new key is rolled in by putting it first, re-encrypting
(``warden keys reencrypt``), then dropping the old one. Warden keys are hashed with HMAC-SHA256 under a key derived
from the first master key (HKDF); a presented key is hashed under every listed master key, so keys issued before a
rotation keep working while the old master key stays listed (rotate them before dropping it).
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_HASH_INFO = b"warden key hash v1"


class CredentialUnreadable(ValueError):
    """A stored credential none of the configured master keys decrypts."""


def parse_master_keys(value: str) -> list[bytes]:
    """The Fernet keys of a ``WARDEN_MASTER_KEY`` value; raises ``ValueError`` naming what is wrong (never the key)."""
    keys = [part.strip().encode() for part in value.split(",") if part.strip()]
    if not keys:
        raise ValueError("WARDEN_MASTER_KEY is set but empty; unset it or give it a key (warden keys master-key)")
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            raise ValueError(
                f"WARDEN_MASTER_KEY: key {position} is not a Fernet key (32 url-safe base64-encoded bytes; "
                "make one with `warden keys master-key`)"
            ) from None
    return keys


def new_master_key() -> str:
    return Fernet.generate_key().decode()


def _hash_key(master: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HASH_INFO).derive(master)


class Keyring:
    def __init__(self, master_keys: list[bytes]) -> None:
        self._fernet = MultiFernet([Fernet(key) for key in master_keys])
        # One keyed HMAC state per master key, copied per use: ``hmac.digest`` goes through OpenSSL 3's one-shot
        # HMAC, which fetches the MAC and builds its context on every call (the proxy's CPU fell 6 % with keys).
        self._hmacs = tuple(hmac.new(_hash_key(key), digestmod=hashlib.sha256) for key in master_keys)

    @classmethod
    def from_setting(cls, value: str | None) -> Keyring | None:
        return None if value is None else cls(parse_master_keys(value))

    def digest(self, secret: str) -> bytes:
        """The stored form of a Warden key: HMAC-SHA256 under the newest master key."""
        return self._keyed(self._hmacs[0], secret.encode())

    def digests(self, secret: str) -> tuple[bytes, ...]:
        """The hash of a presented key under every master key, newest first (one, outside a rotation)."""
        encoded = secret.encode()
        return tuple(self._keyed(state, encoded) for state in self._hmacs)

    @staticmethod
    def _keyed(state: hmac.HMAC, message: bytes) -> bytes:
        h = state.copy()
        h.update(message)
        return h.digest()

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise CredentialUnreadable("no configured master key decrypts this credential") from None

    def reencrypt(self, token: str) -> str:
        """``token`` encrypted again under the newest master key."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise CredentialUnreadable("no configured master key decrypts this credential") from None
