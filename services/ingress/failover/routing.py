"""The ingress's routing: the deployments and aliases of the configuration file and of the replicated maps the admin
API writes, merged into one table (rebuilt on every change), and the router that sends over it."""

from __future__ import annotations

import logging
import random
from collections.abc import Collection, Mapping
from typing import Any

from plumbing.config.base import ReplicatedMap
from plumbing.keyring import Keyring
from schemas.upstreams import Deployment, ModelAlias, ModelAliasSpec, alias_key, file_deployment
from services.ingress.failover.router import Router, RouterSettings
from services.ingress.failover.table import AliasRoute, ConfigError, build_table
from services.ingress.upstreams import bedrock_signer

log = logging.getLogger(__name__)


def file_alias(key: str, spec: ModelAliasSpec) -> ModelAlias:
    provider, slash, model = key.partition("/")
    if not slash or not provider or not model:
        raise ConfigError(f"model alias {key!r}: name it provider/model (e.g. openai/gpt-4o)")
    return ModelAlias(provider=provider, name=model, **spec.model_dump())


class UpstreamRouting:
    def __init__(
        self,
        settings: Any,
        providers: Collection[str],
        keyring: Keyring | None,
        *,
        attempts_counter: Any = None,
        breaker_gauge: Any = None,
        deployments: ReplicatedMap[Deployment] | None = None,
        aliases: ReplicatedMap[ModelAlias] | None = None,
        rng: random.Random | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """``settings``: the ingress settings (their deployments, aliases and routing knobs); ``providers``: the
        configured provider slugs; the maps: what the admin API stores, followed as it changes."""
        self.router = Router(
            RouterSettings(
                deadline_s=settings.routing_deadline_s,
                backoff_base_s=settings.routing_backoff_base_s,
                backoff_cap_s=settings.routing_backoff_cap_s,
                breaker_threshold=settings.breaker_failures,
                breaker_cooldown_s=settings.breaker_cooldown_s,
            ),
            attempts_counter,
            breaker_gauge,
            rng,
        )
        self._providers = frozenset(providers)
        self._keyring = keyring
        self._environ = environ
        self._file_deployments = {name: file_deployment(name, spec) for name, spec in settings.deployments.items()}
        self._file_aliases = {key: file_alias(key, spec) for key, spec in settings.model_aliases.items()}
        self._deployments = deployments
        self._aliases = aliases
        self._signer_for = lambda region: bedrock_signer(settings, region)
        self.table: dict[str, AliasRoute] = {}
        self.table = self._build()  # the configuration file's table must be usable: raised at start otherwise
        for replicated in (deployments, aliases):
            if replicated is not None:
                replicated.listen(lambda _key, _value: self.rebuild())

    def _build(self) -> dict[str, AliasRoute]:
        deployments = dict(self._file_deployments)
        aliases = dict(self._file_aliases)
        if self._deployments is not None:
            deployments.update((d.name, d) for d in self._deployments.values())
        if self._aliases is not None:
            aliases.update((a.key, a) for a in self._aliases.values())
        for deployment in deployments.values():
            if deployment.provider not in self._providers:
                raise ConfigError(
                    f"deployment {deployment.name!r}: {deployment.provider!r} is not a configured provider"
                )
        return build_table(deployments, aliases, self._keyring, self._environ, self._signer_for)

    def rebuild(self) -> None:
        """After a change of the maps. A table that cannot be used (the API refuses what it can check, but a
        credential may not decrypt here) keeps the last good one in force, and says so."""
        try:
            self.table = self._build()
        except ConfigError as exc:
            log.error("the routing table was not changed: %s", exc)

    def lookup(self, provider: str, model: str) -> AliasRoute | None:
        return self.table.get(alias_key(provider, model))
