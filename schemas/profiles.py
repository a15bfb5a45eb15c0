"""Profiles: the contract between the admin API that writes them and the ingress and guard that read them.

A profile says how inline guardrails treat the traffic routed through it: which tool results are trusted, which tool
calls may reach the client, whether secrets are masked, and the guard's thresholds. Every model refuses unknown keys so
a typo in an admin request is an error naming the field, never a silently ignored setting.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from schemas.events import CATEGORIES, Category, Severity
from schemas.limits import SpendLimits

DEFAULT_PROFILE_ID = "default"

ConditionOperator = Literal["equal", "notEqual", "contains", "notContains", "startsWith", "endsWith", "regex"]
ToolInvocationAction = Literal["block_always", "block_when_context_is_untrusted", "allow_when_context_is_untrusted"]
TrustedDataAction = Literal["mark_as_trusted", "mark_as_untrusted", "block_always"]
Mode = Literal["permissive", "restrictive"]
AuthMode = Literal["passthrough", "managed"]

DEFAULT_THRESHOLD = 0.5

# A condition key is a dotted path whose segments may end in ``[*]`` (every element of a list), e.g. ``path``,
# ``recipients[*].email``, ``headers.host``; a leading ``[*]`` addresses a top-level list. The empty key means the
# whole value (for a tool result: its content as text). Names exclude the path syntax and whitespace.
_SEGMENT = r"[^.\[\]\s]+(?:\[\*\])*"
CONDITION_KEY_PATTERN = re.compile(rf"(?:(?:\[\*\])+|{_SEGMENT})(?:\.{_SEGMENT})*")

# A domain, optionally with a leading ``*.`` for "this domain and its subdomains".
_DOMAIN = re.compile(r"(?:\*\.)?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def _domain(value: str) -> str:
    candidate = value.strip().lower().rstrip(".")
    if not _DOMAIN.fullmatch(candidate):
        raise ValueError(f"{value!r} is not a domain name (no scheme, port or path; a '*.' prefix is allowed)")
    return candidate


Domain = Annotated[str, AfterValidator(_domain)]
Threshold = Annotated[float, Field(ge=0.0, le=1.0)]
ToolName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Condition(_Strict):
    """One test on a value found at ``key`` in a tool call's arguments or a tool result's content."""

    key: str = Field(max_length=512)
    operator: ConditionOperator
    value: str = Field(max_length=4096)
    ignore_case: bool = False
    """Compare case-insensitively (both sides case-folded; ``regex`` matches ignoring case)."""

    @field_validator("key")
    @classmethod
    def _key_is_a_path(cls, key: str) -> str:
        if key and not CONDITION_KEY_PATTERN.fullmatch(key):
            raise ValueError(
                "must be a dotted path whose segments may end in [*], e.g. 'path' or 'recipients[*].email'"
            )
        return key

    @field_validator("value")
    @classmethod
    def _regex_compiles(cls, value: str, info: ValidationInfo) -> str:
        # ``operator`` is declared before ``value`` so it is in ``info.data`` when it was itself valid.
        if info.data.get("operator") == "regex":
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return value


class ToolInvocationPolicy(_Strict):
    """Whether a tool call in a model's answer may reach the client."""

    tool: ToolName
    action: ToolInvocationAction
    reason: str = Field(default="", max_length=1000)
    conditions: list[Condition] = Field(default_factory=list)
    """All must hold for the policy to apply; a policy without conditions is the tool's default."""


class TrustedDataPolicy(_Strict):
    """How a tool's result is treated when it comes back in the conversation."""

    tool: ToolName
    action: TrustedDataAction
    reason: str = Field(default="", max_length=1000)
    conditions: list[Condition] = Field(default_factory=list)
    """All must hold for the policy to apply; a policy without conditions is the tool's default."""


class QuarantineRule(_Strict):
    """Quarantine a sender after repeated violations: ``max_violations`` at ``min_severity`` or worse within
    ``window_seconds`` quarantine it for ``duration_seconds``."""

    max_violations: int = Field(default=3, ge=1)
    min_severity: Severity = "high"
    window_seconds: int = Field(default=3600, ge=1)
    duration_seconds: int = Field(default=3600, ge=1)


class GuardSettings(_Strict):
    """The guard's per-profile settings."""

    thresholds: dict[Category, Threshold] = Field(default_factory=lambda: dict.fromkeys(CATEGORIES, DEFAULT_THRESHOLD))
    """Minimum score (0-1) for a finding of each category to become a violation; missing categories get 0.5."""
    quarantine: QuarantineRule | None = None

    @field_validator("thresholds")
    @classmethod
    def _complete_thresholds(cls, thresholds: dict[Category, float]) -> dict[Category, float]:
        return {category: thresholds.get(category, DEFAULT_THRESHOLD) for category in CATEGORIES}

    def threshold(self, category: Category) -> float:
        return self.thresholds.get(category, DEFAULT_THRESHOLD)


class CredentialState(_Strict):
    """How the API shows a stored provider credential: only that it is set. Sent back unchanged, it keeps it."""

    set: Literal[True] = True


ProviderSlug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


def _endpoint(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} must start with http:// or https:// and name a host")
    return value.rstrip("/")


Endpoint = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_endpoint)]
"""An upstream's base URL, as ``WARDEN_<PROVIDER>_BASE_URL`` takes it."""
CredentialChange = Annotated[SecretStr, Field(min_length=1, max_length=8192)] | CredentialState | None
"""In a write: a new credential (the provider key, encrypted before it is stored), ``{"set": true}`` (keep the stored
one) or null (remove it). A provider left out keeps its credential too."""


class ProfileSpec(SpendLimits, _Strict):
    """What an admin writes: everything about a profile but its identity and timestamps; its budgets and rate limits
    come from :class:`SpendLimits`."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    mode: Mode = "permissive"
    """``permissive``: every policy is evaluated and recorded, nothing is blocked. ``restrictive``: decisions apply."""
    redact_secrets: bool = False
    """Mask provider keys, tokens and private keys in what leaves Warden, in either mode."""
    tool_invocation_policies: list[ToolInvocationPolicy] = Field(default_factory=list)
    trusted_data_policies: list[TrustedDataPolicy] = Field(default_factory=list)
    allowed_domains: list[Domain] = Field(default_factory=list)
    """Domains data may be sent to without being an exfiltration finding (``example.com``, ``*.example.com``)."""
    guard: GuardSettings = Field(default_factory=GuardSettings)
    auth: AuthMode = "passthrough"
    """``passthrough``: the agent's own provider key is forwarded (a Warden key is accepted too). ``managed``: only
    Warden keys are accepted, and Warden sends the profile's stored credential upstream."""
    credentials: dict[ProviderSlug, CredentialChange] = Field(default_factory=dict)
    """Provider credentials, per provider slug: write-only (see ``CredentialChange``)."""
    endpoints: dict[ProviderSlug, Endpoint] = Field(default_factory=dict)
    """Upstream base URLs per provider slug for this profile's traffic, over the ingress's settings: e.g. the Azure
    OpenAI resource a team's stored key belongs to (``{"azure": "https://team-a.openai.azure.com"}``)."""


class Profile(ProfileSpec):
    """A stored profile."""

    credentials: dict[str, str] = Field(default_factory=dict)  # type: ignore[assignment]
    """Provider slug -> the credential encrypted under ``WARDEN_MASTER_KEY`` (a Fernet token), never the plaintext."""

    id: str
    """A UUID in its canonical text form, or ``default`` for the default profile."""
    created_at: datetime
    updated_at: datetime

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if value == DEFAULT_PROFILE_ID:
            return value
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise ValueError(f"must be a UUID or {DEFAULT_PROFILE_ID!r}") from None

    @field_validator("created_at", "updated_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # Stores may hand back naive timestamps; they are UTC by convention.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def spec(self) -> ProfileSpec:
        return ProfileSpec.model_validate(self.model_dump(exclude={"id", "created_at", "updated_at", "credentials"}))

    def with_spec(
        self, spec: ProfileSpec, *, credentials: dict[str, str] | None = None, now: datetime | None = None
    ) -> Profile:
        """The same profile (id, creation time) with a new spec, as a PUT writes it; ``credentials``: the stored
        (encrypted) ones after the spec's changes (None: unchanged)."""
        return Profile(
            **spec.model_dump(exclude={"credentials"}),
            credentials=self.credentials if credentials is None else credentials,
            id=self.id,
            created_at=self.created_at,
            updated_at=now or datetime.now(UTC),
        )


ProfileLookup = Callable[[str], Profile | None]
"""How the hot path finds a profile: by id (the ingress also by name), None when there is none."""


def new_profile(
    spec: ProfileSpec, *, credentials: dict[str, str] | None = None, now: datetime | None = None
) -> Profile:
    """A new profile with a fresh id, as a POST creates it; ``credentials``: already encrypted."""
    stamp = now or datetime.now(UTC)
    return Profile(
        **spec.model_dump(exclude={"credentials"}),
        credentials=credentials or {},
        id=str(uuid.uuid4()),
        created_at=stamp,
        updated_at=stamp,
    )


BUILT_IN_AT = datetime(1970, 1, 1, tzinfo=UTC)
"""The timestamps of the built-in default profile until it is first updated: it was never created, and a fixed time
is the same on every read and on every instance (the time of the read would change each time)."""


def default_profile(*, now: datetime | None = None) -> Profile:
    """The profile used when a request names none: permissive, no policies, no redaction."""
    stamp = now or BUILT_IN_AT
    return Profile(id=DEFAULT_PROFILE_ID, name="Default", created_at=stamp, updated_at=stamp)
