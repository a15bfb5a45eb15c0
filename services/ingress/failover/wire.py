"""A client's request as a deployment of another wire format, or of the same one at another place, takes it: pure
functions, chosen once per target when the routing table is built (``for_target``), so an alias whose deployments
speak its own format as it is does no work here.

- OpenAI → Azure OpenAI: ``/chat/completions``, ``/completions``, ``/embeddings`` go to
  ``/openai/deployments/{model}/…`` (the model sent there is the Azure deployment's name), ``/responses`` to
  ``/openai/responses`` with the deployment as the body's ``model``; the deployment's ``api-version`` is added.
- Azure OpenAI → OpenAI: ``/openai/deployments/{deployment}/{op}``, ``/openai/responses`` and the v1 surface
  ``/openai/v1/{op}`` go to ``/{op}`` with the model in the body; ``api-version`` is dropped.
- Azure → Azure: the deployment in the path is the one sent there; its ``api-version``, if set, replaces the client's.
- Bedrock → Bedrock: the model id in the path (``/model/{modelId}/…``) is the one sent there (each region's
  inference profile has its own id), percent-encoded as the AWS SDKs encode it, so the signature covers it as sent.

A route with no counterpart there (an OpenAI ``/images/…`` for Azure) raises ``Untranslatable``: that deployment is
skipped for the request, nothing was sent.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from urllib.parse import parse_qsl, quote, unquote, urlencode

import orjson

Translate = Callable[[str, bytes, bytes, str, str], tuple[str, bytes, bytes]]
"""(route, query, body, requested model, model sent) → the route, query and body to send."""

_DEPLOYMENTS = "/openai/deployments/"
DEPLOYMENT_OPERATIONS = frozenset({"chat/completions", "completions", "embeddings"})
"""What Azure serves below a deployment's path (the model named by the path)."""
V1_OPERATIONS = frozenset({"chat/completions", "responses", "embeddings"})
"""What Azure's v1 surface (``/openai/v1/…``) and the ``/openai/responses`` route serve (the model in the body)."""


class Untranslatable(Exception):
    """The deployment has no counterpart of the request's route."""


def with_body_model(body: bytes, model: str) -> bytes:
    """The JSON body with ``model`` set (added when absent: an Azure deployment path's body names none)."""
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return body
    if not isinstance(parsed, dict) or parsed.get("model") == model:
        return body
    parsed["model"] = model
    return orjson.dumps(parsed)


def with_api_version(query: bytes, api_version: str | None, *, drop: bool = False) -> bytes:
    """The query with its ``api-version`` replaced by ``api_version`` (or removed: ``drop``); unchanged when there is
    nothing to do."""
    if api_version is None and not drop:
        return query
    kept = [
        (name, value)
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True)
        if name != "api-version"
    ]
    if api_version is not None:
        kept.append(("api-version", api_version))
    return urlencode(kept).encode("latin-1")


def azure_operation(route: str) -> tuple[str, str | None] | None:
    """An Azure OpenAI route's operation and the deployment its path names (None: the body's ``model`` does), or
    None for a route of neither surface."""
    if route.startswith(_DEPLOYMENTS):
        deployment, _, operation = route[len(_DEPLOYMENTS) :].partition("/")
        return (operation, unquote(deployment)) if deployment and operation else None
    if route == "/openai/responses":
        return "responses", None
    if route.startswith("/openai/v1/") and route[len("/openai/v1/") :] in V1_OPERATIONS:
        return route[len("/openai/v1/") :], None
    return None


def _to_azure(
    operation: str, query: bytes, body: bytes, model: str, api_version: str | None
) -> tuple[str, bytes, bytes]:
    if operation in DEPLOYMENT_OPERATIONS:
        route = f"{_DEPLOYMENTS}{quote(model, safe='')}/{operation}"
    elif operation == "responses":
        route = "/openai/responses"
    else:
        raise Untranslatable(f"Azure OpenAI serves no {operation}")
    # The body names the deployment too (Azure reads it only where the path names none): the record shows what went.
    return route, with_api_version(query, api_version), with_body_model(body, model)


def openai_to_azure(
    api_version: str, route: str, query: bytes, body: bytes, requested: str, model: str
) -> tuple[str, bytes, bytes]:
    operation = route[1:]
    if operation not in DEPLOYMENT_OPERATIONS and operation != "responses":
        raise Untranslatable(f"Azure OpenAI has no counterpart of {route}")
    return _to_azure(operation, query, body, model, api_version)


def azure_to_openai(route: str, query: bytes, body: bytes, requested: str, model: str) -> tuple[str, bytes, bytes]:
    found = azure_operation(route)
    if found is None or (found[0] not in DEPLOYMENT_OPERATIONS and found[0] not in V1_OPERATIONS):
        raise Untranslatable(f"OpenAI has no counterpart of {route}")
    return "/" + found[0], with_api_version(query, None, drop=True), with_body_model(body, model)


def azure_to_azure(
    api_version: str | None, route: str, query: bytes, body: bytes, requested: str, model: str
) -> tuple[str, bytes, bytes]:
    if route.startswith(_DEPLOYMENTS):  # any operation of a deployment's path (audio, images…): the name replaced
        rest = route[len(_DEPLOYMENTS) :].partition("/")[2]
        return f"{_DEPLOYMENTS}{quote(model, safe='')}/{rest}", with_api_version(query, api_version), body
    if azure_operation(route) is not None:  # the model in the body
        return route, with_api_version(query, api_version), with_body_model(body, model)
    return route, with_api_version(query, api_version), body


def bedrock_model(route: str, query: bytes, body: bytes, requested: str, model: str) -> tuple[str, bytes, bytes]:
    """``/model/{modelId}/{action}`` with the model id sent there (the id may hold a ``/``: the action is last)."""
    if not route.startswith("/model/"):
        raise Untranslatable(f"Bedrock has no model in {route}")
    action = route.rstrip("/").rpartition("/")[2]
    return f"/model/{quote(model, safe='')}/{action}", query, body


def for_target(
    alias_provider: str, deployment_provider: str, requested: str, model: str, api_version: str | None
) -> Translate | None:
    """How a request of an alias of ``alias_provider`` is sent to a deployment of ``deployment_provider``; None: as
    it is (the ``model`` in the body, or Gemini's path, renamed where it differs)."""
    if alias_provider == "openai" and deployment_provider == "azure":
        assert api_version is not None, "checked by the table: an azure deployment for openai clients has one"
        return partial(openai_to_azure, api_version)
    if alias_provider == "azure" and deployment_provider == "openai":
        return azure_to_openai
    if alias_provider == deployment_provider == "azure" and (api_version is not None or model != requested):
        return partial(azure_to_azure, api_version)
    if alias_provider == deployment_provider == "bedrock" and model != requested:
        return bedrock_model
    return None
