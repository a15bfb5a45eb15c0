"""What the spans need of each event, decoded from the bus's JSON and nothing more.

Decoding whole events would cost the tracing subscription more than building the spans: the request's bodies, the
answer's tool calls and cost, and the objects they become (which the collector of cycles then walks). In-process the
published models are used as they are: they have every field these have.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from plumbing.bus.base import Decoder, Delivery, Undecodable, validation_summary
from schemas import topics
from schemas.events import PolicyDecision, RequestEvent, ResponseEvent, TraceContext, UpstreamAttempt, ViolationEvent
from schemas.view import ToolCall, Usage


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TracedRequest(_Part):
    """Of a ``RequestEvent``."""

    type: Literal["request"] = "request"
    interaction_id: str
    method: str = "POST"
    stream: bool = False
    decisions: list[PolicyDecision] = Field(default_factory=list)
    trace: TraceContext | None = None


class TracedRequestWithContent(TracedRequest):
    """Of a ``RequestEvent``, when the spans carry the content."""

    request_received: str = ""
    request_sent: str | None = None


class TracedResponse(_Part):
    """Of a ``ResponseEvent``."""

    type: Literal["response"] = "response"
    interaction_id: str
    started_at: datetime
    profile_id: str
    agent_id: str = ""
    user_id: str = ""
    session_id: str = ""
    provider: str
    model: str = ""
    route: str = ""
    status: int
    response_body: str = ""
    usage: Usage = Field(default_factory=Usage)
    latency_ms: float
    ttft_ms: float | None = None
    finish_reason: str | None = None
    answer_text: str = ""
    blocked_tool_calls: list[ToolCall] = Field(default_factory=list)
    decisions: list[PolicyDecision] = Field(default_factory=list)
    error: str | None = None
    aborted: bool = False
    trace: TraceContext | None = None
    upstream_attempts: list[UpstreamAttempt] = Field(default_factory=list)


Request = RequestEvent | TracedRequest
Response = ResponseEvent | TracedResponse
Traced = Request | Response | ViolationEvent
_PUBLISHED = (RequestEvent, ResponseEvent, ViolationEvent)


def decoder(content: bool) -> Decoder[Traced]:
    """The tracing subscription's decoder; ``content``: the spans carry the request's body."""
    models: dict[str, type[BaseModel]] = {
        topics.REQUESTS: TracedRequestWithContent if content else TracedRequest,
        topics.RESPONSES: TracedResponse,
        topics.VIOLATIONS: ViolationEvent,
    }

    def decode(delivery: Delivery) -> Any:
        if delivery.event is not None:
            if not isinstance(delivery.event, _PUBLISHED):
                raise Undecodable(f"unexpected {type(delivery.event).__name__} on {delivery.topic}")
            return delivery.event
        model = models.get(delivery.topic)
        if model is None:
            raise Undecodable(f"no event model for topic {delivery.topic}")
        try:
            return model.model_validate_json(delivery.raw or b"")
        except ValidationError as exc:
            raise Undecodable(f"invalid {model.__name__}: {validation_summary(exc)}") from None
        except ValueError as exc:
            raise Undecodable(f"undecodable payload: {exc}") from None

    return decode
