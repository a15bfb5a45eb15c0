"""Upstream deployments and model aliases: the contract between the configuration (file or admin API) and the
ingress that routes by it.

A deployment is one place a provider's API answers: a provider slug (its wire format), a base URL, optionally a
credential Warden sends there, a weight and the models it serves. A model alias maps a model a client asks for at
one provider's routes to an ordered list of deployments, each with the model name to send it. Without any alias the
ingress forwards as it always has: one upstream per provider.

A deployment speaks its alias's wire format, or one that carries the same requests (``STANDS_IN``): an Azure OpenAI
deployment stands in an OpenAI alias and an OpenAI deployment in an Azure alias, their paths and query translated
per attempt.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
Strategy = Literal["weighted", "least_outstanding"]
REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
"""An AWS region (``us-east-1``, ``eu-west-3``, ``us-gov-west-1``)."""
API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?|v1|latest|preview")
"""An Azure OpenAI ``api-version``."""

STANDS_IN: dict[str, frozenset[str]] = {
    "openai": frozenset({"azure"}),
    "azure": frozenset({"openai"}),
}
"""Alias provider → the other providers whose deployments can answer its clients: the one place wire-format
compatibility is declared. OpenAI and Azure OpenAI take the same bodies and give the same answers; only the paths,
the ``api-version`` query and the key's header differ, which the ingress translates."""


def stands_in(alias_provider: str, deployment_provider: str) -> bool:
    """Can a deployment of ``deployment_provider`` answer the clients of an alias of ``alias_provider``?"""
    return deployment_provider == alias_provider or deployment_provider in STANDS_IN.get(alias_provider, ())


def bedrock_runtime_url(region: str) -> str:
    return f"https://bedrock-runtime.{region}.amazonaws.com"


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} must start with http:// or https:// and name a host")
    return value.rstrip("/")


class DeploymentSpec(BaseModel):
    """A deployment as an operator writes it (configuration file or admin API)."""

    model_config = ConfigDict(extra="forbid")

    provider: str
    """The provider slug whose wire format it speaks (``openai``, ``anthropic``, ``gemini``, ``azure``, ``bedrock`` or
    a custom provider)."""
    base_url: str = ""
    """Azure: the resource's endpoint (``https://{resource}.openai.azure.com``); Bedrock: optional, the region's
    runtime endpoint by default."""
    credential: SecretStr | dict[str, bool] | None = None
    """The key Warden sends there in place of the client's (write-only: answers show ``{"set": true}``, which may be
    sent back to keep it). In a configuration file: the Fernet token ``warden keys encrypt`` prints. Azure: the
    resource's key (sent as ``api-key``); Bedrock: a Bedrock API key, or AWS keys as a JSON object
    ``{"access_key_id", "secret_access_key", "session_token"?}`` that requests are signed with."""
    credential_env: str | None = None
    """Configuration file only: the environment variable holding the key (instead of ``credential``)."""
    weight: float = Field(default=1.0, gt=0, le=1_000_000)
    models: list[str] = Field(default_factory=list)
    """The models it serves; empty: whichever it is asked for."""
    max_concurrent: int | None = Field(default=None, ge=1)
    """Requests in flight to it from one proxy process at most; a deployment at its limit is skipped."""
    breaker_failures: int | None = Field(default=None, ge=1)
    """Consecutive failures that open its breaker (default: ``WARDEN_BREAKER_FAILURES``)."""
    breaker_cooldown_s: float | None = Field(default=None, gt=0)
    """How long its open breaker keeps it out (default: ``WARDEN_BREAKER_COOLDOWN_S``)."""
    api_version: str | None = None
    """Azure only: the ``api-version`` sent there (replacing the client's); needed where OpenAI clients use it."""
    region: str | None = None
    """Bedrock only (and required there): the AWS region its requests are signed for."""

    @model_validator(mode="after")
    def _check(self) -> DeploymentSpec:
        if self.api_version is not None:
            if self.provider != "azure":
                raise ValueError("api_version: only an azure deployment takes one")
            if not API_VERSION.fullmatch(self.api_version):
                raise ValueError(f"api_version: {self.api_version!r} is not an Azure OpenAI api-version")
        if self.provider == "bedrock":
            if self.region is None:
                raise ValueError("region: a bedrock deployment needs the AWS region it is signed for")
            if not REGION.fullmatch(self.region):
                raise ValueError(f"region: {self.region!r} is not an AWS region")
            if not self.base_url:
                self.base_url = bedrock_runtime_url(self.region)
            if isinstance(self.credential, SecretStr) and not _whole_aws_keys(self.credential.get_secret_value()):
                raise ValueError(
                    "credential: a JSON object must be AWS keys (access_key_id, secret_access_key, session_token?)"
                )
        elif self.region is not None:
            raise ValueError("region: only a bedrock deployment takes one")
        elif not self.base_url:
            raise ValueError("base_url: required (only a bedrock deployment has a default, its region's)")
        return self

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _url(value) if value else value


def _whole_aws_keys(secret: str) -> bool:
    """A Bedrock credential is AWS keys when it is a JSON object (a Bedrock API key otherwise): then both keys."""
    if not secret.lstrip().startswith("{"):
        return True
    try:
        keys = json.loads(secret)
    except ValueError:
        return False
    return isinstance(keys, dict) and all(isinstance(keys.get(k), str) for k in ("access_key_id", "secret_access_key"))


class Deployment(BaseModel):
    """A deployment as stored and replicated: the credential encrypted with ``WARDEN_MASTER_KEY``."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=NAME.pattern)]
    provider: str
    base_url: str
    credential: str | None = None
    """The Fernet token of the credential (never the plaintext)."""
    credential_env: str | None = None
    weight: float = 1.0
    models: list[str] = Field(default_factory=list)
    max_concurrent: int | None = None
    breaker_failures: int | None = None
    breaker_cooldown_s: float | None = None
    api_version: str | None = None
    region: str | None = None

    @property
    def has_credential(self) -> bool:
        return self.credential is not None or self.credential_env is not None

    def serves(self, model: str) -> bool:
        return not self.models or model in self.models

    def public(self) -> dict[str, object]:
        """As the API and the pages show it: never the credential, only whether one is set."""
        out = self.model_dump(mode="json", exclude={"credential"})
        out["credential"] = {"set": self.has_credential}
        return out


def stored_deployment(name: str, spec: DeploymentSpec, credential: str | None) -> Deployment:
    """The deployment ``spec`` describes, holding ``credential`` (a Fernet token, or None)."""
    return Deployment(
        name=name,
        provider=spec.provider,
        base_url=spec.base_url,
        credential=credential,
        credential_env=spec.credential_env,
        weight=spec.weight,
        models=spec.models,
        max_concurrent=spec.max_concurrent,
        breaker_failures=spec.breaker_failures,
        breaker_cooldown_s=spec.breaker_cooldown_s,
        api_version=spec.api_version,
        region=spec.region,
    )


def file_deployment(name: str, spec: DeploymentSpec) -> Deployment:
    """A deployment of the configuration file: its ``credential``, if any, is already the Fernet token."""
    return stored_deployment(
        name, spec, spec.credential.get_secret_value() if isinstance(spec.credential, SecretStr) else None
    )


class AliasTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deployment: str
    model: str | None = None
    """The model name sent to this deployment; None: the one the client asked for."""
    priority: int = Field(default=0, ge=0, le=100)
    """Targets of the lowest priority share the traffic (by the alias's strategy); higher ones are fallbacks."""


class ModelAliasSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    targets: list[AliasTarget] = Field(min_length=1, max_length=64)
    strategy: Strategy = "weighted"
    max_attempts: int = Field(default=3, ge=1, le=10)
    """Upstream requests for one client request at most, retries and fallbacks together."""

    @model_validator(mode="after")
    def _distinct(self) -> ModelAliasSpec:
        seen = [t.deployment for t in self.targets]
        if len(seen) != len(set(seen)):
            raise ValueError("targets: each deployment may appear once")
        return self


class ModelAlias(ModelAliasSpec):
    provider: str
    """The provider whose routes the alias applies to (the client's wire format)."""
    name: str
    """The model the client asks for."""

    @property
    def key(self) -> str:
        return alias_key(self.provider, self.name)


def alias_key(provider: str, model: str) -> str:
    """The key of an alias: ``provider/model`` (the configuration file's table names)."""
    return f"{provider}/{model}"


def check_table(deployments: dict[str, Deployment], aliases: dict[str, ModelAlias]) -> str | None:
    """What is wrong with a routing table as a whole (a target naming an unknown deployment, or one whose wire format
    cannot answer the alias's clients, or one that does not serve the model), or None."""
    for alias in aliases.values():
        for target in alias.targets:
            deployment = deployments.get(target.deployment)
            if deployment is None:
                return f"alias {alias.key}: no deployment named {target.deployment!r}"
            if not stands_in(alias.provider, deployment.provider):
                accepted = ", ".join(sorted({alias.provider, *STANDS_IN.get(alias.provider, ())}))
                return (
                    f"alias {alias.key}: deployment {deployment.name!r} speaks {deployment.provider}, which cannot "
                    f"answer {alias.provider} clients (deployments of {accepted} can)"
                )
            if deployment.provider != alias.provider:
                problem = _crossing_problem(alias, deployment)
                if problem is not None:
                    return problem
            if not deployment.serves(target.model or alias.name):
                return f"alias {alias.key}: deployment {deployment.name!r} does not serve {target.model or alias.name}"
    return None


def _crossing_problem(alias: ModelAlias, deployment: Deployment) -> str | None:
    """What a deployment of another (compatible) wire format lacks to stand in ``alias``, or None."""
    if not deployment.has_credential:
        # Without its own, the client's credential would go there: a key for one provider sent to another.
        return (
            f"alias {alias.key}: deployment {deployment.name!r} speaks {deployment.provider}, so it needs a credential "
            f"of its own (the {alias.provider} credential of the request is never sent to {deployment.provider})"
        )
    if deployment.provider == "azure" and deployment.api_version is None:
        return (
            f"alias {alias.key}: deployment {deployment.name!r} needs an api_version "
            f"({alias.provider} clients send none)"
        )
    return None
