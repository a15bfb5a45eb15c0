"""The admin API of upstream routing: ``/api/deployments`` and ``/api/model-aliases``. What it stores is replicated
to every ingress like profiles; a deployment's credential is encrypted with ``WARDEN_MASTER_KEY`` and never shown."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from plumbing.config.base import ReplicatedMap
from plumbing.keyring import Keyring
from schemas.errors import error_json
from schemas.upstreams import (
    NAME,
    Deployment,
    DeploymentSpec,
    ModelAlias,
    ModelAliasSpec,
    alias_key,
    check_table,
    file_deployment,
    stored_deployment,
)
from services.console.validation import read_model


def _error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse(error_json(message, kind), status_code=status)


class UpstreamsApi:
    def __init__(
        self,
        deployments: ReplicatedMap[Deployment] | None,
        aliases: ReplicatedMap[ModelAlias] | None,
        keyring: Keyring | None,
        providers: Callable[[], list[str]],
        file_deployments: Mapping[str, DeploymentSpec] | None = None,
        file_aliases: Mapping[str, ModelAliasSpec] | None = None,
    ) -> None:
        """``file_deployments``: those of the configuration file, which aliases written here may name too;
        ``file_aliases`` (by ``provider/model``): the file's aliases, only listed."""
        self.deployments = deployments
        self.aliases = aliases
        self.keyring = keyring
        self.providers = providers
        self.file_deployments = dict(file_deployments or {})
        self.file_aliases = dict(file_aliases or {})

    def _known(self) -> dict[str, Deployment]:
        known = {name: file_deployment(name, spec) for name, spec in self.file_deployments.items()}
        if self.deployments is not None:
            known.update((d.name, d) for d in self.deployments.values())
        return known

    # -- deployments -------------------------------------------------------------------------------------------------

    async def list_deployments(self, _: Request) -> Response:
        items = sorted(self.deployments.values() if self.deployments else [], key=lambda d: d.name)
        return JSONResponse({"items": [d.public() for d in items]})

    async def read_deployment(self, request: Request) -> Response:
        found = self.deployments.get(request.path_params["name"]) if self.deployments else None
        if found is None:
            return _error(404, "no such deployment", "not_found_error")
        return JSONResponse(found.public())

    async def put_deployment(self, request: Request) -> Response:
        if self.deployments is None:
            return _error(404, "deployments are not stored here", "not_found_error")
        name = request.path_params["name"]
        if not NAME.fullmatch(name):
            return _error(
                422,
                f"name: {name!r} must be 1-63 of a-z 0-9 _ . - (starting with a letter or digit)",
                "validation_error",
            )
        spec = await read_model(request, DeploymentSpec)
        if isinstance(spec, Response):
            return spec
        if spec.provider not in self.providers():
            return _error(
                422,
                f"provider: {spec.provider} is not a configured provider ({', '.join(self.providers())})",
                "validation_error",
            )
        if spec.credential_env is not None:
            # An environment variable named over the API would let a writer send any of the ingress's own secrets
            # (the master key included) to a base URL of their choosing.
            return _error(
                422, "credential_env: only the configuration file may name an environment variable", "validation_error"
            )
        current = self.deployments.get(name)
        credential: str | None
        if isinstance(spec.credential, SecretStr):
            if self.keyring is None:
                return _error(
                    422, "credential: WARDEN_MASTER_KEY is not set, so credentials cannot be stored", "validation_error"
                )
            credential = self.keyring.encrypt(spec.credential.get_secret_value())
        elif isinstance(spec.credential, dict):
            if current is None or current.credential is None:
                return _error(422, "credential: there is no stored credential to keep", "validation_error")
            credential = current.credential
        else:
            credential = None
        deployment = stored_deployment(name, spec, credential)
        known = self._known() | {name: deployment}
        problem = check_table(known, self._aliases())
        if problem is not None:
            return _error(409, problem, "invalid_request_error")
        await self.deployments.put(name, deployment)
        return JSONResponse(deployment.public(), status_code=200 if current is not None else 201)

    async def delete_deployment(self, request: Request) -> Response:
        name = request.path_params["name"]
        if self.deployments is None or self.deployments.get(name) is None:
            return _error(404, "no such deployment", "not_found_error")
        users = [a.key for a in self._aliases().values() if any(t.deployment == name for t in a.targets)]
        if users:
            return _error(409, f"model aliases route to it: {', '.join(sorted(users))}", "invalid_request_error")
        await self.deployments.delete(name)
        return Response(status_code=204)

    async def list_file_table(self, _: Request) -> Response:
        """The configuration file's deployments and aliases, read-only (the API cannot change them; one stored
        through the API under the same name is the one in force)."""
        deployments = [file_deployment(name, spec).public() for name, spec in sorted(self.file_deployments.items())]
        aliases = []
        for key, spec in sorted(self.file_aliases.items()):
            provider, _, model = key.partition("/")
            aliases.append({"provider": provider, "name": model, **spec.model_dump(mode="json")})
        return JSONResponse({"deployments": deployments, "model_aliases": aliases})

    # -- model aliases -----------------------------------------------------------------------------------------------

    def _aliases(self) -> dict[str, ModelAlias]:
        return {a.key: a for a in (self.aliases.values() if self.aliases else [])}

    async def list_aliases(self, _: Request) -> Response:
        items = sorted(self._aliases().values(), key=lambda a: a.key)
        return JSONResponse({"items": [a.model_dump(mode="json") for a in items]})

    async def read_alias(self, request: Request) -> Response:
        key = alias_key(request.path_params["provider"], request.path_params["model"])
        found = self.aliases.get(key) if self.aliases else None
        if found is None:
            return _error(404, "no such model alias", "not_found_error")
        return JSONResponse(found.model_dump(mode="json"))

    async def put_alias(self, request: Request) -> Response:
        if self.aliases is None:
            return _error(404, "model aliases are not stored here", "not_found_error")
        provider, model = request.path_params["provider"], request.path_params["model"]
        if provider not in self.providers():
            return _error(422, f"{provider} is not a configured provider", "validation_error")
        spec = await read_model(request, ModelAliasSpec)
        if isinstance(spec, Response):
            return spec
        alias = ModelAlias(provider=provider, name=model, **spec.model_dump())
        problem = check_table(self._known(), {alias.key: alias})
        if problem is not None:
            return _error(422, problem, "validation_error")
        existed = self.aliases.get(alias.key) is not None
        await self.aliases.put(alias.key, alias)
        return JSONResponse(alias.model_dump(mode="json"), status_code=200 if existed else 201)

    async def delete_alias(self, request: Request) -> Response:
        key = alias_key(request.path_params["provider"], request.path_params["model"])
        if self.aliases is None or not await self.aliases.delete(key):
            return _error(404, "no such model alias", "not_found_error")
        return Response(status_code=204)

    def routes(self) -> list[Route]:
        alias = "/api/model-aliases/{provider}/{model:path}"
        return [
            Route("/api/deployments", self.list_deployments, methods=["GET"]),
            Route("/api/routing/file", self.list_file_table, methods=["GET"]),
            Route("/api/deployments/{name}", self.read_deployment, methods=["GET"]),
            Route("/api/deployments/{name}", self.put_deployment, methods=["PUT"]),
            Route("/api/deployments/{name}", self.delete_deployment, methods=["DELETE"]),
            Route("/api/model-aliases", self.list_aliases, methods=["GET"]),
            Route(alias, self.read_alias, methods=["GET"]),
            Route(alias, self.put_alias, methods=["PUT"]),
            Route(alias, self.delete_alias, methods=["DELETE"]),
        ]
