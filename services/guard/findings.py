"""What a detector reports: one suspicious thing, where it is, and a masked excerpt of it.

A finding carries no interaction metadata; the guard service turns it into a ``ViolationEvent`` by adding the ids and
attribution of the event it scored.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from schemas.events import Action, Category, Severity


class Finding(BaseModel):
    detector: str
    """Dotted name of the rule or model that fired, e.g. ``secrets.openai_api_key``."""
    category: Category
    severity: Severity
    score: float = Field(ge=0.0, le=1.0)
    location: str
    """Where in the interaction: ``request.messages[3].tool_result``, ``response.tool_calls[0].arguments.url``, …"""
    excerpt: str = ""
    """A short excerpt with the sensitive part masked; never the full secret or personal datum."""
    action: Action = "logged"
    """What was done about it inline; detectors only log, policy decisions may have blocked or redacted."""
