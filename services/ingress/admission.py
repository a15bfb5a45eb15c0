"""Who a request is and which profile it goes through: decided by the Warden key it presents, or, without one, by
its path (and then only where the profile's ``auth`` is ``passthrough``).

With a Warden key the key decides: its profile, its agent id (an ``X-Archestra-Agent-Id`` naming another agent is
refused, so a quarantined agent cannot step around its quarantine), its user id when it binds one. A path naming
another profile is refused too. Every bad key (malformed, unknown, revoked, expired, rotated out) gets the same 401;
the reason is counted (``warden_auth_failures_total{reason}``) and recorded, never the secret.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from plumbing.keyring import CredentialUnreadable, Keyring
from schemas.keys import WardenKey
from schemas.profiles import Profile, ProfileLookup
from services.ingress.attribution import Attribution
from services.ingress.credentials import credential_header, presented
from services.ingress.keys import KeyIndex
from services.ingress.routing import Route

Auth = Literal["provider_key", "warden_key", "none", "refused"]
"""How a request authenticated, as recorded: its own provider key (passthrough), a Warden key, no credential at all
(passthrough), or refused."""

INVALID_KEY = "invalid Warden key"
"""The one answer to every bad key."""
MANAGED_ONLY = "this profile accepts only Warden keys; send one where the provider key goes"
PLAINTEXT_CACHE_BYTES = 1024 * 1024
"""Decrypted credentials kept (their ciphertexts and plaintexts together); beyond it the cache starts again. Profiles
hold a credential per provider, so in practice every one fits."""


@dataclass(slots=True)
class Admission:
    auth: Auth
    profile: Profile | None = None
    key: WardenKey | None = None
    status: int = 0
    """0: admitted; else the status to refuse with."""
    message: str = ""
    """What the client is told."""
    reason: str = ""
    """Why it was refused: the metrics label, and in the record."""
    credential: tuple[tuple[str, str], ...] | None = None
    """The headers Warden sends upstream in place of the client's credentials (None: the client's pass)."""

    @property
    def key_prefix(self) -> str:
        return self.key.prefix if self.key is not None else ""


class Gate:
    def __init__(
        self,
        profiles: ProfileLookup,
        keys: KeyIndex,
        keyring: Keyring | None,
        count_failure: Callable[[str], None],
    ) -> None:
        self._profiles = profiles
        self._keys = keys
        self._keyring = keyring
        self._count_failure = count_failure
        self._plaintexts: dict[str, str] = {}
        """Decrypted credentials by their ciphertext: Fernet costs more than a lookup, and profiles change rarely."""
        self._plaintext_bytes = 0

    def admit(
        self,
        route: Route,
        provider: str,
        headers: list[tuple[bytes, bytes]],
        query: bytes,
        now: datetime,
        credential_optional: bool = False,
    ) -> Admission:
        """``credential_optional``: the provider may be called without a credential (a custom OpenAI-compatible one):
        with a Warden key and no stored credential, it is called with none."""
        credential = presented(headers, query)
        if credential.warden_key is None:
            profile = self._profiles(route.profile_id)
            auth: Auth = "provider_key" if credential.provider_key else "none"
            if profile is None:
                return Admission(auth, status=404, message=f"unknown profile {route.profile_id}")
            if profile.auth == "managed":
                reason = "provider_key" if credential.provider_key else "missing"
                return self._refused(Admission("refused", profile, status=401, message=MANAGED_ONLY, reason=reason))
            return Admission(auth, profile)
        check = self._keys.check(credential.warden_key, now)
        if check.refusal is not None:
            # Recorded under the profile the path names (the key's, when the key is known).
            profile = self._profiles(check.key.profile_id if check.key else route.profile_id)
            refused = Admission("refused", profile, check.key, 401, INVALID_KEY, check.refusal)
            return self._refused(refused)
        key = check.key
        assert key is not None
        profile = self._profiles(key.profile_id)
        if profile is None:
            return self._refused(Admission("refused", None, key, 401, INVALID_KEY, "profile_missing"))
        if route.named:
            named = self._profiles(route.profile_id)
            if named is None or named.id != profile.id:
                message = f"this Warden key is bound to profile {key.profile_id}, not {route.profile_id}"
                return self._refused(Admission("refused", profile, key, 403, message, "wrong_profile"))
        if key.providers and provider not in key.providers:
            message = f"this Warden key may not call provider {provider}"
            return self._refused(Admission("refused", profile, key, 403, message, "provider_not_allowed"))
        admitted = Admission("warden_key", profile, key)
        stored = profile.credentials.get(provider)
        secret = self._plaintext(stored) if stored is not None else None
        if secret is None and credential_optional and stored is None:
            admitted.credential = ()
            return admitted
        if secret is None:
            admitted.status = 502
            admitted.message = f"profile {profile.id} holds no usable credential for provider {provider}"
            admitted.reason = "no_credential"
            return admitted
        admitted.credential = (credential_header(provider, secret),)
        return admitted

    def bind(self, admission: Admission, who: Attribution) -> tuple[Attribution, str | None]:
        """The attribution a request is recorded under, and why it is refused (None: it is not). With a key, the
        key's agent (and user, when it binds one); the headers may add only what the key leaves open."""
        key = admission.key
        if key is None or admission.auth != "warden_key":
            return who, None
        if who.agent_id and who.agent_id != key.agent_id:
            self._count_failure("agent_mismatch")
            return who, f"X-Archestra-Agent-Id {who.agent_id} disagrees with the Warden key's agent {key.agent_id}"
        if key.user_id and who.user_id and who.user_id != key.user_id:
            self._count_failure("user_mismatch")
            return who, f"X-Archestra-User-Id {who.user_id} disagrees with the Warden key's user"
        return Attribution(key.agent_id, key.user_id or who.user_id, who.session_id), None

    def model_refusal(self, admission: Admission, model: str, has_body: bool) -> str | None:
        key = admission.key
        if key is None or not key.models or admission.auth != "warden_key":
            return None
        if model in key.models or (not model and not has_body):  # a listing (GET /models) asks for no model
            return None
        self._count_failure("model_not_allowed")
        return f"this Warden key may not use model {model or '(none named)'}"

    def _refused(self, admission: Admission) -> Admission:
        self._count_failure(admission.reason)
        return admission

    def _plaintext(self, ciphertext: str) -> str | None:
        plain = self._plaintexts.get(ciphertext)
        if plain is not None or self._keyring is None:
            return plain
        try:
            plain = self._keyring.decrypt(ciphertext)
        except CredentialUnreadable:
            return None
        size = len(ciphertext) + len(plain)
        if self._plaintext_bytes + size > PLAINTEXT_CACHE_BYTES:
            self._plaintexts.clear()
            self._plaintext_bytes = 0
        self._plaintexts[ciphertext] = plain
        self._plaintext_bytes += size
        return plain
