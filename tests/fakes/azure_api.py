"""The Azure OpenAI wire format: OpenAI's bodies on Azure's paths, with Azure's key header, ``api-version`` check,
content-filter annotations and error envelope.

Paths, as a resource at ``https://{resource}.openai.azure.com`` serves them:

- ``/openai/deployments/{deployment}/chat/completions`` and ``…/embeddings`` (``?api-version=`` required)
- ``/openai/responses`` (``?api-version=`` required, the deployment as ``model`` in the body)
- ``/openai/v1/chat/completions``, ``/openai/v1/responses``, ``/openai/v1/embeddings`` (the v1 surface: the deployment
  as ``model`` in the body, no ``api-version`` needed)

A deployment serves one model (``DEPLOYMENTS``); answers name that model, not the deployment. A prompt holding
``[[content_filter]]`` is refused as Azure refuses a prompt its content filter catches.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from .openai_api import OpenAIFake
from .wire import JSON_KEY, SEQ_KEY, dumps, json_response, sse

DEPLOYMENTS = {
    "gpt-4o": "gpt-4o-2024-08-06",  # named after its model, as many are
    "chat-prod": "gpt-4o-2024-08-06",
    "mini": "gpt-4o-mini-2024-07-18",
    "embed": "text-embedding-3-small",
}
"""Deployment name → the model it serves."""
CONTENT_FILTER = "[[content_filter]]"
_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
_SAFE = {
    "hate": {"filtered": False, "severity": "safe"},
    "self_harm": {"filtered": False, "severity": "safe"},
    "sexual": {"filtered": False, "severity": "safe"},
    "violence": {"filtered": False, "severity": "safe"},
}
PROMPT_FILTER_RESULTS = [
    {"prompt_index": 0, "content_filter_results": {**_SAFE, "jailbreak": {"filtered": False, "detected": False}}}
]
_MESSAGES = {
    401: (
        "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an "
        "active subscription and use a correct regional API endpoint for your resource."
    ),
    404: "Resource not found",
    429: "Requests to the ChatCompletions_Create Operation have exceeded the token rate limit of your current tier.",
    500: "The server had an error while processing your request.",
}


class AzureFake(OpenAIFake):
    """Handlers for one fake Azure OpenAI resource."""

    def routes(self) -> list[web.RouteDef]:
        deployment = "/openai/deployments/{deployment}"
        return [
            web.post(f"{deployment}/chat/completions", self.deployment_call(self.chat_completions)),
            web.post(f"{deployment}/embeddings", self.deployment_call(self.embeddings)),
            web.post("/openai/responses", self.model_call(self.responses, versioned=True)),
            web.post("/openai/v1/chat/completions", self.model_call(self.chat_completions)),
            web.post("/openai/v1/responses", self.model_call(self.responses)),
            web.post("/openai/v1/embeddings", self.model_call(self.embeddings)),
        ]

    # -- envelope -------------------------------------------------------------------------------------------------

    def headers(self, request: web.Request, input_tokens: int = 0) -> dict[str, str]:
        return {
            "apim-request-id": f"{request[SEQ_KEY]:08x}-0000-4000-8000-fake",
            "x-ms-region": "Sweden Central",
            "x-ratelimit-remaining-requests": "99",
            "x-ratelimit-remaining-tokens": str(max(0, 100_000 - input_tokens)),
        }

    def error(self, request: web.Request, status: int, message: str | None = None) -> web.Response:
        payload = {"error": {"code": str(status), "message": message or _MESSAGES.get(status, "Error.")}}
        return json_response(payload, status=status, headers=self.headers(request))

    def not_found(self, request: web.Request) -> web.Response:
        return self.error(request, 404)

    def authenticate(self, request: web.Request) -> web.Response | None:
        """``api-key``, or an Entra ID token as ``Authorization: Bearer``."""
        key = request.headers.get("api-key", "").strip()
        if not key:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            key = token.strip() if scheme.lower() == "bearer" else ""
        accepted = self.state.accepted_keys
        if not key or (accepted is not None and key not in accepted):
            return self.error(request, 401)
        return None

    # -- routing to the OpenAI handlers ---------------------------------------------------------------------------

    def deployment_call(self, handler: Any) -> Any:
        async def call(request: web.Request) -> web.StreamResponse:
            return await self._serve(request, handler, request.match_info["deployment"], versioned=True)

        return call

    def model_call(self, handler: Any, *, versioned: bool = False) -> Any:
        async def call(request: web.Request) -> web.StreamResponse:
            body = request[JSON_KEY]
            model = body.get("model") if isinstance(body, dict) else None
            if not isinstance(model, str) or not model:
                return self._invalid(request, "Missing required parameter: 'model'.", "model")
            return await self._serve(request, handler, model, versioned=versioned)

        return call

    async def _serve(self, request: web.Request, handler: Any, deployment: str, *, versioned: bool) -> Any:
        version = request.query.get("api-version")
        if versioned and (version is None or not _API_VERSION.match(version)):
            return self.not_found(request)  # what Azure answers to a missing or unknown api-version
        served = DEPLOYMENTS.get(deployment)
        if served is None:
            message = (
                "The API deployment for this resource does not exist. If you created the deployment within the last "
                "5 minutes, please wait a moment and try again."
            )
            payload = {"error": {"code": "DeploymentNotFound", "message": message}}
            return json_response(payload, status=404, headers=self.headers(request))
        body = request[JSON_KEY]
        if not isinstance(body, dict):
            return self._invalid(request, "The request body is not valid JSON.", None)
        if CONTENT_FILTER.encode() in dumps(body):
            return self._filtered(request)
        request[JSON_KEY] = {**body, "model": served}  # a copy: the request log keeps what arrived
        return await handler(request)

    def _invalid(self, request: web.Request, message: str, param: str | None) -> web.Response:
        payload = {"error": {"code": "BadRequest", "message": message, "param": param, "type": "invalid_request_error"}}
        return json_response(payload, status=400, headers=self.headers(request))

    def _filtered(self, request: web.Request) -> web.Response:
        payload = {
            "error": {
                "message": (
                    "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. "
                    "Please modify your prompt and retry."
                ),
                "type": None,
                "param": "prompt",
                "code": "content_filter",
                "status": 400,
                "innererror": {
                    "code": "ResponsibleAIPolicyViolation",
                    "content_filter_result": {**_SAFE, "jailbreak": {"filtered": True, "detected": True}},
                },
            }
        }
        return json_response(payload, status=400, headers=self.headers(request))

    # -- content-filter annotations -------------------------------------------------------------------------------

    def annotate_completion(self, payload: dict[str, Any]) -> dict[str, Any]:
        for choice in payload.get("choices", []):
            choice["content_filter_results"] = _SAFE
        return {**payload, "prompt_filter_results": PROMPT_FILTER_RESULTS}

    def annotate_chunk(self, payload: dict[str, Any]) -> dict[str, Any]:
        for choice in payload.get("choices", []):
            delta = choice.get("delta") or {}
            choice["content_filter_results"] = _SAFE if delta.get("content") else {}
        payload.pop("obfuscation", None)  # Azure sends none
        return payload

    def stream_preamble(self) -> list[bytes]:
        """Azure's first chunk: the prompt's filter results, with no choices and an empty id and model."""
        preamble = {"choices": [], "created": 0, "id": "", "model": "", "object": ""}
        return [sse({**preamble, "prompt_filter_results": PROMPT_FILTER_RESULTS})]
