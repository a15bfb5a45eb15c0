"""Events carried on the bus (Kafka topics in distributed mode, the in-process bus in the embedded default).

Every event is keyed by ``interaction_id``. Bodies are JSON text exactly as exchanged (secrets masked where a policy
says so); credentials (Authorization, x-api-key, x-goog-api-key, ?key=) never appear in any field.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal, get_args

from pydantic import BaseModel, Field, PrivateAttr

from schemas import topics
from schemas.cost import Cost
from schemas.view import ConversationView, ToolCall, Usage

SCHEMA_VERSION = 1

INTERACTION_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
"""An interaction id: a UUID in the text form ``str(uuid.UUID(...))`` gives it (lower-case hex, 8-4-4-4-12), as the
ingress makes them. Use ``fullmatch``: ``match`` would take a prefix, and ``$`` would let a trailing newline through."""


class Attribution(BaseModel):
    """Who sent an interaction: carried by every event so each can be stored or scored on its own."""

    interaction_id: str
    started_at: datetime
    profile_id: str
    agent_id: str = ""
    user_id: str = ""
    session_id: str = ""
    provider: str
    model: str = ""
    auth: str = ""
    """How the request authenticated: ``warden_key``, ``provider_key`` (its own, passed through), ``none`` or
    ``refused``; empty in events written before Warden keys."""
    key_prefix: str = ""
    """The prefix of the Warden key it presented (``wk_`` and 8 characters), never the key; empty without one."""


class TraceContext(BaseModel):
    """Where an interaction sits in a distributed trace (W3C Trace Context): the ingress continues the client's
    ``traceparent`` or starts a trace, and picks the ids of its own spans, so whoever builds the spans later (off the
    hot path) gives them the ids the upstream already saw."""

    trace_id: str
    """32 lower-case hex digits."""
    span_id: str
    """The ingress's server span (16 hex digits)."""
    parent_span_id: str | None = None
    """The client's span, from its ``traceparent``; None when the ingress started the trace."""
    sampled: bool = True
    tracestate: str = ""
    """The client's ``tracestate``, passed on as it came."""


class UpstreamAttempt(BaseModel):
    """One request to the upstream: a client span when tracing is on (its id went upstream in the ``traceparent``),
    and, for a request routed by a model alias, one attempt of its retries and fallbacks."""

    span_id: str = ""
    """Empty when tracing is off."""
    started_ms: float
    """Milliseconds from the interaction's start."""
    finished_ms: float
    """When its outcome was known: the answer's status (a stream's first chunk), or the failure."""
    status: int | None = None
    """The upstream's HTTP status; None when it never answered."""
    error: str | None = None
    deployment: str = ""
    """The deployment it went to; empty for a request no model alias routes."""
    model: str = ""
    """The model it asked that deployment for (routed requests)."""
    latency_ms: float | None = None
    error_class: str | None = None
    """What went wrong (routed requests): ``connect``, ``disconnected``, ``timeout``, ``status_429``,
    ``status_5xx``, ``status_4xx``, ``stream_broken``, ``unsendable`` (never sent: the deployment has no counterpart
    of the route, or no AWS credentials to sign with); None when it answered well."""
    answered: bool = False
    """Its answer is the one the client received (routed requests)."""


class PolicyDecision(BaseModel):
    """One thing the inline guardrails decided about an interaction."""

    kind: Literal[
        "tool_call_blocked",
        "tool_call_allowed",
        "tool_result_blocked",
        "tool_result_untrusted",
        "redaction",
        "answer_unjudged",
    ]
    """``answer_unjudged``: the answer was too large to judge (withheld when enforced)."""
    tool: str | None = None
    tool_call_id: str | None = None
    reason: str = ""
    enforced: bool = True
    """False in permissive mode: decided and recorded, not applied."""


class RequestEvent(Attribution):
    schema_version: int = SCHEMA_VERSION
    type: Literal["request"] = "request"
    route: str
    """The provider path after the profile segment, without the query string."""
    method: str = "POST"
    stream: bool = False
    request_received: str = ""
    """The body as received (secrets masked when the profile redacts)."""
    request_sent: str | None = None
    """The body as forwarded, when a policy changed it; None when it left unchanged."""
    decisions: list[PolicyDecision] = Field(default_factory=list)
    untrusted_since: str | None = None
    """Tool call id of the first tool result that made the context untrusted."""
    trace: TraceContext | None = None
    """Set when tracing is on."""

    # Not part of the event: never serialised, so only a consumer in the same process (the embedded default) sees it.
    _view: ConversationView | None = PrivateAttr(default=None)

    def attach_view(self, view: ConversationView) -> RequestEvent:
        """Hand the common view of the body as forwarded to in-process consumers, which then need not parse the body
        and build it again; consumers across Kafka build it from the body as always."""
        self._view = view
        return self

    def attached_view(self) -> ConversationView | None:
        return self._view


class ResponseEvent(Attribution):
    schema_version: int = SCHEMA_VERSION
    type: Literal["response"] = "response"
    route: str = ""
    """The same route as the request's, so the answer can be read without it."""
    status: int
    response_body: str = ""
    """The response as the client received it (for a stream, the event stream text)."""
    usage: Usage = Field(default_factory=Usage)
    cost: Cost = Field(default_factory=Cost)
    """What the answer cost, priced at the ingress from ``usage`` (unknown when no price or no usage)."""
    finished_at: datetime
    latency_ms: float
    ttft_ms: float | None = None
    """Time to the first body byte sent to the client."""
    finish_reason: str | None = None
    answer_text: str = ""
    """The model's answer as text (assembled from the stream when streamed), so consumers need not re-parse the
    body."""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    blocked_tool_calls: list[ToolCall] = Field(default_factory=list)
    decisions: list[PolicyDecision] = Field(default_factory=list)
    error: str | None = None
    aborted: bool = False
    """The client went away before the response ended; the body holds what was sent."""
    trace: TraceContext | None = None
    """Set when tracing is on."""
    upstream_attempts: list[UpstreamAttempt] = Field(default_factory=list)
    """The requests sent upstream, with their timings: every attempt of a request a model alias routes (retries and
    fallbacks, which one answered), else the one request when tracing is on; empty otherwise."""


Category = Literal["prompt_injection", "secret", "pii", "exfiltration", "policy"]
CATEGORIES: tuple[Category, ...] = get_args(Category)
Severity = Literal["low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = get_args(Severity)
"""From the least to the most severe."""
SEVERITY_RANK: dict[str, int] = {severity: rank for rank, severity in enumerate(SEVERITIES, start=1)}
"""The rank stored beside a violation (``severity_rank``) so a query can ask for a minimum severity."""
Action = Literal["logged", "blocked", "redacted"]
"""What was done about a violation inline."""


class Evidence(BaseModel):
    location: str
    """Where in the interaction, e.g. ``request.messages[3].tool_result`` or ``response.tool_calls[0].arguments``."""
    excerpt: str = ""
    """A short excerpt with the sensitive part masked."""


class ViolationEvent(BaseModel):
    schema_version: int = SCHEMA_VERSION
    type: Literal["violation"] = "violation"
    violation_id: str
    interaction_id: str
    detected_at: datetime
    detector: str
    category: Category
    severity: Severity
    score: float = Field(ge=0.0, le=1.0)
    action: Action = "logged"
    evidence: Evidence
    profile_id: str
    agent_id: str = ""
    user_id: str = ""
    trace: TraceContext | None = None
    """The scored interaction's trace, so a finding can be shown in it."""


class DeadLetter(BaseModel):
    schema_version: int = SCHEMA_VERSION
    topic: str
    key: str | None = None
    reason: str
    payload: str
    failed_at: datetime


TOPIC_MODELS: dict[str, type[BaseModel]] = {
    topics.REQUESTS: RequestEvent,
    topics.RESPONSES: ResponseEvent,
    topics.VIOLATIONS: ViolationEvent,
    topics.DEAD_LETTER: DeadLetter,
}
"""The model each topic carries, for decoding what arrives from Kafka."""
