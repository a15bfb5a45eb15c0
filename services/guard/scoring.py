"""Scores one event: the common view of what it carries, through every detector. Pure, apart from the clock."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson

from providers.base import ProviderAdapter
from providers.registry import adapter_for
from providers.sse import json_events
from schemas.events import Evidence, RequestEvent, ResponseEvent, ViolationEvent
from schemas.profiles import Profile
from schemas.view import CompletionView
from services.guard.detectors import (
    findings_from_decisions,
    scan_body,
    scan_completion,
    scan_conversation,
    scan_strings,
    stream_strings,
)
from services.guard.findings import Finding


def findings_for(event: RequestEvent | ResponseEvent, profile: Profile) -> list[Finding]:
    adapter = adapter_for(event.provider)
    allowed = frozenset(profile.allowed_domains)
    column = "request_decisions" if isinstance(event, RequestEvent) else "response_decisions"
    findings = findings_from_decisions(event.decisions, column=column)
    if isinstance(event, RequestEvent):
        return findings + _request_findings(adapter, event, allowed)
    if event.status >= 400 or not event.response_body:
        return findings
    if event.answer_text or event.tool_calls:
        # The ingress already read the answer: no need to parse the body (or a whole event stream) again.
        return findings + scan_completion(
            CompletionView(text=event.answer_text, tool_calls=event.tool_calls), allowed_domains=allowed
        )
    body = event.response_body.encode()
    if body.lstrip().startswith((b"data:", b"event:", b"[")):
        completion = adapter.stream_view(event.route, body)
        if completion.text or completion.tool_calls:
            return findings + scan_completion(completion, allowed_domains=allowed)
        # A stream whose shape the adapter does not know (or that carries no text): its texts, reassembled.
        texts = stream_strings(_stream_events(body), "response.stream")
        return findings + scan_strings(texts, answer=True, allowed_domains=allowed)
    parsed = _parsed(body)
    if parsed is None:
        return findings
    completion = adapter.completion_view(event.route, parsed)
    if completion.text or completion.tool_calls:
        return findings + scan_completion(completion, allowed_domains=allowed)
    # An answer whose shape the adapter does not know (or that carries no text): its strings, read as text.
    return findings + scan_body(parsed, "response.body", answer=True, allowed_domains=allowed)


def _request_findings(adapter: ProviderAdapter, event: RequestEvent, allowed: frozenset[str]) -> list[Finding]:
    """The request's conversation through every detector; a body the adapter has no view of (a route it does not
    know the shape of) is read string by string instead, so nothing sent that way goes unread."""
    view = event.attached_view()
    if view is not None and (view.messages or view.tools):
        return scan_conversation(view, allowed_domains=allowed)
    body = event.request_sent if event.request_sent is not None else event.request_received
    parsed = _parsed(body) if body else None
    if view is None and isinstance(parsed, dict):
        view = adapter.request_view(event.route, parsed)
        if view.messages or view.tools:
            return scan_conversation(view, allowed_domains=allowed)
    return scan_body(parsed, "request.body", answer=False, allowed_domains=allowed) if parsed is not None else []


def _stream_events(body: bytes) -> list[Any]:
    """The JSON events of a streamed answer: server-sent events, or the JSON array Gemini streams without ``alt=sse``
    (an array cut short by a dropped connection yields nothing: there is no whole event to read)."""
    if body.lstrip().startswith(b"["):
        parsed = _parsed(body)
        return parsed if isinstance(parsed, list) else []
    return list(json_events(body))


def _parsed(body: str | bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def violation_id(interaction_id: str, finding: Finding) -> str:
    """Deterministic, so a redelivered event yields the same ids and the store collapses the repeats."""
    key = f"{interaction_id}|{finding.detector}|{finding.category}|{finding.location}"
    return hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


def violations(event: RequestEvent | ResponseEvent, profile: Profile, findings: list[Finding]) -> list[ViolationEvent]:
    now = datetime.now(UTC)
    return [
        ViolationEvent(
            violation_id=violation_id(event.interaction_id, f),
            interaction_id=event.interaction_id,
            detected_at=now,
            detector=f.detector,
            category=f.category,
            severity=f.severity,
            score=f.score,
            action=f.action,
            evidence=Evidence(location=f.location, excerpt=f.excerpt),
            profile_id=event.profile_id,
            agent_id=event.agent_id,
            user_id=event.user_id,
            trace=event.trace,
        )
        for f in findings
        if f.score >= profile.guard.threshold(f.category)
    ]
