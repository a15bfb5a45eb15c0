"""Azure OpenAI: OpenAI's bodies on Azure's paths, with Azure's errors.

Azure serves a model through a *deployment* its owner names: ``/openai/deployments/{deployment}/chat/completions``
(and ``/embeddings``, ``/completions``…) with an ``api-version`` query parameter, or the newer surfaces that take the
model in the body, ``/openai/responses?api-version=…`` and ``/openai/v1/chat/completions``, ``/openai/v1/responses``.
The deployment is the model as far as Warden's records, policies and keys are concerned (it is what the client
asked for); the answer's own ``model`` field names the model behind it, and that is what the answer is priced as.

Bodies are OpenAI's, with Azure's content-filter annotations added (``prompt_filter_results``, each choice's
``content_filter_results``, a first stream chunk without choices): the OpenAI readers keep what they know and pass the
rest, so those annotations reach the client and the record unchanged.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import orjson

from providers.base import RequestMeta
from providers.openai import OpenAIAdapter
from schemas.view import CompletionView

_DEPLOYMENTS = "/openai/deployments/"

_CODES = {401: "401", 403: "403", 404: "404", 408: "408", 413: "413", 429: "429"}
"""Azure answers these statuses with the status itself as the error code (``{"code": "401", …}``); Warden's own
refusals do the same, so clients that branch on Azure's codes read them alike."""


def deployment_of(route: str) -> str | None:
    """``/openai/deployments/{deployment}/…`` → the deployment's name (decoded); None for a route that names none."""
    start = route.find(_DEPLOYMENTS)
    if start < 0:
        return None
    name = route[start + len(_DEPLOYMENTS) :].partition("/")[0]
    return unquote(name) if name else None


def error_payload(status: int, message: str, kind: str) -> bytes:
    """Azure's error envelope: ``{"error": {"code", "message", "param", "type"}}``."""
    return orjson.dumps({"error": {"code": _CODES.get(status, kind), "message": message, "param": None, "type": kind}})


class AzureAdapter(OpenAIAdapter):
    name = "azure"
    default_base_url = ""
    """None: an Azure resource has its own endpoint (``https://{resource}.openai.azure.com``), which must be
    configured (``WARDEN_AZURE_BASE_URL``)."""
    top_level_paths = frozenset({"openai"})

    def __init__(self, name: str = "azure") -> None:
        super().__init__(name)

    def request_meta(self, route: str, body: Any, query: str) -> RequestMeta:
        meta = super().request_meta(route, body, query)
        deployment = deployment_of(route)
        return meta if deployment is None else RequestMeta(model=deployment, stream=meta.stream)

    def error_body(self, status: int, message: str, kind: str) -> bytes:
        return error_payload(status, message, kind)

    def priced_model(self, requested: str, completion: CompletionView) -> str:
        """The model the answer names (``gpt-4o-2024-08-06``), not the deployment's name, which is the owner's
        choice and usually no model's."""
        return completion.model or requested
