"""The routing table the hot path reads: each alias resolved to its targets (deployment, base URL, model to send,
credential headers, and for the few that need them a translation of the request and a signer), built once per
configuration change, so routing a request is one dictionary lookup."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from plumbing.keyring import Keyring
from schemas.upstreams import Deployment, ModelAlias, Strategy, alias_key, check_table
from services.ingress.credentials import credential_header
from services.ingress.failover.wire import Translate, for_target
from services.ingress.signing import BedrockSigner, NoAwsCredentials, read_stored

SignerFor = Callable[[str], BedrockSigner]
"""The signer of a Bedrock deployment's region (Warden's own AWS credentials where the request brings none)."""


@dataclass(frozen=True, slots=True)
class Target:
    deployment: str
    base_url: str
    model: str
    """The model name sent there."""
    priority: int
    weight: float
    credential: tuple[tuple[str, str], ...] | None
    """The headers Warden authenticates there with (None: the request's own credential passes)."""
    max_concurrent: int | None
    breaker_failures: int | None = None
    breaker_cooldown_s: float | None = None
    translate: Translate | None = None
    """How the request's route, query and body become this deployment's (None: only the model renamed, if it is)."""
    signer: BedrockSigner | None = None
    """Signs each attempt for the deployment's region (Bedrock); None: credentials are headers."""
    answers_as: str | None = None
    """The deployment's provider when it is not the alias's (an Azure deployment in an OpenAI alias): its answer is
    priced as that provider prices it."""


@dataclass(frozen=True, slots=True)
class AliasRoute:
    provider: str
    model: str
    """The model the client asked for."""
    targets: tuple[Target, ...]
    strategy: Strategy
    max_attempts: int


class ConfigError(ValueError):
    """A routing table Warden cannot use; the message names what is wrong (never a credential)."""


def _credential(deployment: Deployment, keyring: Keyring | None, environ: Mapping[str, str]) -> str | None:
    if deployment.credential_env is not None:
        secret = environ.get(deployment.credential_env)
        if not secret:
            raise ConfigError(f"deployment {deployment.name!r}: {deployment.credential_env} is not set")
        return secret
    if deployment.credential is None:
        return None
    if keyring is None:
        raise ConfigError(f"deployment {deployment.name!r} holds a credential but WARDEN_MASTER_KEY is not set")
    return keyring.decrypt(deployment.credential)


def build_table(
    deployments: Mapping[str, Deployment],
    aliases: Mapping[str, ModelAlias],
    keyring: Keyring | None,
    environ: Mapping[str, str] | None = None,
    signer_for: SignerFor = BedrockSigner,
) -> dict[str, AliasRoute]:
    """Every alias by its key (``provider/model``); raises ``ConfigError`` for a table that cannot be used."""
    problem = check_table(dict(deployments), dict(aliases))
    if problem is not None:
        raise ConfigError(problem)
    environ = os.environ if environ is None else environ
    secrets: dict[str, str | None] = {}
    table: dict[str, AliasRoute] = {}
    for alias in aliases.values():
        targets = []
        for target in alias.targets:
            deployment = deployments[target.deployment]
            if deployment.name not in secrets:
                try:
                    secrets[deployment.name] = secret = _credential(deployment, keyring, environ)
                    if deployment.provider == "bedrock" and secret is not None:
                        read_stored(secret)  # AWS keys that are not whole are refused here, not on a request
                except NoAwsCredentials as exc:
                    raise ConfigError(f"deployment {deployment.name!r}: {exc}") from None
                except ValueError as exc:  # CredentialUnreadable included
                    raise ConfigError(f"deployment {deployment.name!r}: {exc}") from None
            secret = secrets[deployment.name]
            model = target.model or alias.name
            targets.append(
                Target(
                    deployment=deployment.name,
                    base_url=deployment.base_url,
                    model=model,
                    priority=target.priority,
                    weight=deployment.weight,
                    credential=None if secret is None else (credential_header(deployment.provider, secret),),
                    max_concurrent=deployment.max_concurrent,
                    breaker_failures=deployment.breaker_failures,
                    breaker_cooldown_s=deployment.breaker_cooldown_s,
                    translate=for_target(
                        alias.provider, deployment.provider, alias.name, model, deployment.api_version
                    ),
                    signer=signer_for(deployment.region or "") if deployment.provider == "bedrock" else None,
                    answers_as=deployment.provider if deployment.provider != alias.provider else None,
                )
            )
        table[alias_key(alias.provider, alias.name)] = AliasRoute(
            alias.provider, alias.name, tuple(targets), alias.strategy, alias.max_attempts
        )
    return table
