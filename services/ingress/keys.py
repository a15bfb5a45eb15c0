"""The Warden keys the hot path checks: an index from each secret's keyed hash to its key, kept in step with the
replicated map of keys. Checking a presented key costs one HMAC and one dictionary lookup, no I/O."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime

from plumbing.config.base import ReplicatedMap
from plumbing.keyring import Keyring
from schemas.keys import KeySecret, WardenKey
from services.keyring.tokens import well_formed

_UNUSABLE = b"\x00" * 32
"""Hashed against when no master key is configured, so a refusal costs the same either way."""


@dataclass(frozen=True, slots=True)
class KeyCheck:
    key: WardenKey | None
    """The key the secret belongs to (also when refused for being revoked, expired or rotated out)."""
    refusal: str | None
    """None: accepted; else the reason (``malformed``, ``unknown``, ``revoked``, ``expired``, ``rotated``)."""


class KeyIndex:
    def __init__(self, keys: ReplicatedMap[WardenKey] | None, keyring: Keyring | None) -> None:
        self._keyring = keyring
        self._by_digest: dict[bytes, tuple[WardenKey, KeySecret]] = {}
        self._digests_of: dict[str, list[bytes]] = {}
        if keys is not None:
            for key in keys.values():
                self._changed(key.id, key)
            keys.listen(self._changed)

    def _changed(self, key_id: str, value: object) -> None:
        for digest in self._digests_of.pop(key_id, ()):
            self._by_digest.pop(digest, None)
        if isinstance(value, WardenKey):
            digests = []
            for secret in value.secrets:
                digest = bytes.fromhex(secret.digest)
                self._by_digest[digest] = (value, secret)
                digests.append(digest)
            self._digests_of[key_id] = digests

    def __len__(self) -> int:
        return len(self._digests_of)

    def check(self, presented: str, now: datetime) -> KeyCheck:
        """Which key ``presented`` is and whether it may be used now. Every refusal costs the same work (a malformed
        or unknown secret is still hashed), so timing says nothing about which it was."""
        shaped = well_formed(presented)
        keyring = self._keyring
        found: tuple[WardenKey, KeySecret] | None = None
        if keyring is None:
            hmac.compare_digest(_UNUSABLE, _UNUSABLE)
        else:
            for digest in keyring.digests(presented):
                candidate = self._by_digest.get(digest)
                # The dictionary found it by its hash; comparing the stored hash in constant time keeps the final
                # say off a short-circuiting comparison.
                if candidate is not None and hmac.compare_digest(bytes.fromhex(candidate[1].digest), digest):
                    found = candidate
                    break
        if not shaped:
            return KeyCheck(None, "malformed")
        if found is None:
            return KeyCheck(None, "unknown")
        key, secret = found
        return KeyCheck(key, key.refusal(secret, now))
