"""What the ingresses remember of the responses they relayed, for requests that continue a history the provider holds.

The Responses API lets a request name its history (``previous_response_id``, ``conversation``) instead of carrying
it; the tool results in that history are then out of sight. Every ingress records, for each response it relays under
a profile with guardrails, whether the context was trusted and which tool calls it made; the records travel between
instances in a replicated map, in buckets (one per instance and minute) so that a write carries many records.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class HistoryRecord(BaseModel):
    untrusted_call: str | None = None
    """The tool call id of the first untrusted result in that history; None when it was trusted."""
    untrusted_tool: str | None = None
    untrusted: bool = False
    calls: dict[str, str] = Field(default_factory=dict)
    """Tool call id -> tool name, for the calls made in that history (their results arrive in a later request)."""
    at: float = 0.0
    """When it was recorded (Unix seconds); records expire after the configured age."""


class HistoryBucket(BaseModel):
    """The records one instance wrote in one minute, keyed by reference (``response:<id>``, ``conversation:<id>``)."""

    instance: str
    minute: int
    part: int = 0
    records: dict[str, HistoryRecord] = Field(default_factory=dict)

    @property
    def key(self) -> str:
        return bucket_key(self.instance, self.minute, self.part)


def bucket_key(instance: str, minute: int, part: int) -> str:
    return f"{instance}:{minute}:{part}"
