"""What each span says: names and attributes of an interaction's spans and events, from its events alone (pure).

Follows the OpenTelemetry semantic conventions 1.44.0 for generative AI (status: development):
``gen_ai.operation.name``, ``gen_ai.provider.name``, the ``{operation} {model}`` span name, ``gen_ai.usage.*``,
``gen_ai.response.*``. Guardrail decisions follow the proposal for GenAI guardrails (``gen_ai.guardrail.*``: name,
target, decision, action, policy), which the conventions have not adopted yet; the guard's findings use
``gen_ai.security.finding`` from the same proposal. Warden's own attributes are under ``warden.*``.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Any

from schemas.events import PolicyDecision, ViolationEvent
from services.tracing.decoding import Response

SEMCONV_VERSION = "1.44.0"
SCHEMA_URL = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"
GUARDRAIL_NAME = "warden.inline_policy"
DECISION_EVENT = "gen_ai.guardrail.decision"
FIRST_CHUNK_EVENT = "gen_ai.response.first_chunk"
FINDING_EVENT = "gen_ai.security.finding"

# Warden's provider slugs → the conventions' well-known gen_ai.provider.name values; custom providers keep their name.
_PROVIDERS = {"openai": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini", "azure": "azure.ai.openai"}
_PROVIDERS |= {"bedrock": "aws.bedrock", "groq": "groq", "mistral": "mistral_ai", "deepseek": "deepseek"}
_OPERATIONS: tuple[tuple[str, str], ...] = (
    ("/chat/completions", "chat"),
    ("/responses", "chat"),
    ("/v1/messages", "chat"),
    (":generateContent", "generate_content"),
    (":streamGenerateContent", "generate_content"),
    ("/embeddings", "embeddings"),
    ("/completions", "text_completion"),
)
# The first model name in an answer (OpenAI and Anthropic ``model``, Gemini ``modelVersion``), streamed or not.
_RESPONSE_MODEL = re.compile(r'"(?:model|modelVersion)"\s*:\s*"([^"\\]{1,200})"')
_TARGETS = {
    "tool_call_blocked": "tool_call",
    "tool_call_allowed": "tool_call",
    "tool_result_blocked": "tool_result",
    "tool_result_untrusted": "tool_result",
    "redaction": "llm_input",
    "answer_unjudged": "llm_output",
}
_DENIED = {"tool_call_blocked", "tool_result_blocked", "answer_unjudged"}


@dataclass(slots=True)
class RequestPart:
    """What a span needs from the request event, kept until the answer arrives."""

    stream: bool = False
    method: str = "POST"
    decisions: list[PolicyDecision] = field(default_factory=list)
    content: str | None = None

    def size(self) -> int:
        """About the bytes it holds (walking it would cost more than the rest of its spans)."""
        return 300 + sys.getsizeof(self.content) + sum(400 + sys.getsizeof(d.reason) for d in self.decisions)


def provider_name(provider: str) -> str:
    return _PROVIDERS.get(provider, provider)


def operation(route: str) -> str | None:
    path = route.split("?", 1)[0]
    for suffix, name in _OPERATIONS:
        if path.endswith(suffix):
            return name
    return None


def span_name(route: str, model: str, method: str) -> str:
    op = operation(route)
    if op is None:
        return f"{method} {route}"
    return f"{op} {model}" if model else op


def response_model(body: str) -> str | None:
    found = _RESPONSE_MODEL.search(body, 0, 64 * 1024)
    return found.group(1) if found else None


def blocked(response: Response, request: RequestPart) -> bool:
    decisions = [*request.decisions, *response.decisions]
    return bool(response.blocked_tool_calls) or any(d.enforced and d.kind in _DENIED for d in decisions)


def cut(text: str, limit: int) -> str:
    data = text.encode()
    return text if len(data) <= limit else data[:limit].decode("utf-8", "ignore") + "…"


def common_attributes(response: Response) -> dict[str, Any]:
    attributes: dict[str, Any] = {"gen_ai.provider.name": provider_name(response.provider)}
    op = operation(response.route)
    if op is not None:
        attributes["gen_ai.operation.name"] = op
    if response.model:
        attributes["gen_ai.request.model"] = response.model
    return attributes


def server_attributes(
    response: Response, request: RequestPart, content: bool, content_max_bytes: int
) -> dict[str, Any]:
    usage = response.usage
    attributes = common_attributes(response)
    optional: dict[str, Any] = {
        "gen_ai.response.model": response_model(response.response_body),
        "gen_ai.usage.input_tokens": usage.input_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": usage.cached_tokens,
        # The provider reported no usage (a chat stream not asked for it): the counts above are Warden's own.
        "warden.usage.estimated": True if usage.estimated else None,
        "gen_ai.response.finish_reasons": [response.finish_reason] if response.finish_reason else None,
        "gen_ai.conversation.id": response.session_id or None,
        "gen_ai.agent.id": response.agent_id or None,
        "gen_ai.response.time_to_first_chunk": None if response.ttft_ms is None else response.ttft_ms / 1000.0,
        "warden.user.id": response.user_id or None,
        "error.type": str(response.status) if response.status >= 500 else None,
    }
    attributes.update({key: value for key, value in optional.items() if value is not None})
    attributes.update(
        {
            "gen_ai.request.stream": request.stream,
            "http.request.method": request.method,
            "http.response.status_code": response.status,
            "warden.interaction.id": response.interaction_id,
            "warden.profile.id": response.profile_id,
            "warden.route": response.route,
            "warden.blocked": blocked(response, request),
            "warden.aborted": response.aborted,
        }
    )
    if content:
        if request.content is not None:
            attributes["warden.request.content"] = cut(request.content, content_max_bytes)
        if response.answer_text:
            attributes["warden.response.content"] = cut(response.answer_text, content_max_bytes)
    return attributes


def decision_event(decision: PolicyDecision) -> dict[str, Any]:
    """One guardrail decision: what was judged, the verdict, what was done about it (nothing, in a permissive
    profile) and why."""
    denied = decision.kind in _DENIED
    modified = decision.kind == "redaction"
    verdict = "deny" if denied else "modify" if modified else "allow"
    action = verdict if decision.enforced else "none"
    attributes: dict[str, Any] = {
        "gen_ai.guardrail.name": GUARDRAIL_NAME,
        "gen_ai.guardrail.target.type": _TARGETS.get(decision.kind, "llm_input"),
        "gen_ai.guardrail.decision.type": verdict,
        "gen_ai.guardrail.action.type": {"deny": "block"}.get(action, action),
        "gen_ai.guardrail.policy.id": decision.kind,
        "warden.guardrail.enforced": decision.enforced,
    }
    if decision.reason:
        attributes["gen_ai.guardrail.decision.reason"] = decision.reason
    if decision.tool:
        attributes["gen_ai.tool.name"] = decision.tool
    if decision.tool_call_id:
        attributes["gen_ai.tool.call.id"] = decision.tool_call_id
    return attributes


def finding_attributes(violation: ViolationEvent) -> dict[str, Any]:
    """A finding of the guard: what kind, how bad, which detector, where; never the excerpt (it is built around the
    datum, even masked)."""
    return {
        "gen_ai.security.risk.category": violation.category,
        "gen_ai.security.risk.severity": violation.severity,
        "gen_ai.security.risk.score": violation.score,
        "gen_ai.guardrail.name": "warden.guard",
        "gen_ai.guardrail.action.type": {"logged": "none", "blocked": "block", "redacted": "modify"}[violation.action],
        "warden.violation.id": violation.violation_id,
        "warden.violation.detector": violation.detector,
        "warden.violation.location": violation.evidence.location,
        "warden.interaction.id": violation.interaction_id,
        "warden.profile.id": violation.profile_id,
    }
