"""``warden scan``: the guard's detectors over JSON lines, for back-testing and for analysts.

Each input line is one of:
- ``{"text": "..."}`` (optionally ``"location"``): a raw text;
- an interaction as ``GET /api/interactions/{id}`` returns it (``request_received`` / ``response_body``);
- a request or response event as carried on ``llm.requests`` / ``llm.responses``.
Each finding is printed as one JSON line with the input's line number (and interaction id when there is one): the
detector (the finding), its category, severity and score, the position (``role``: user message, tool result, tool-call
arguments, system prompt, assistant answer, tool description; and ``location``, the path inside the interaction) and
an excerpt in which every secret and personal datum is masked. Only findings at or above the profile's threshold for
their category are printed; raw texts are judged against the profile's allowed domains like answers are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from schemas.events import RequestEvent, ResponseEvent
from schemas.profiles import DEFAULT_PROFILE_ID, Profile, ProfileSpec, default_profile, new_profile
from services.guard.detectors import scan_text
from services.guard.findings import Finding
from services.guard.scoring import findings_for


class ProfileError(ValueError):
    """A ``--profile`` that names no readable profile."""


def profile_from_file(path: Path) -> Profile:
    """A profile from a JSON file: a stored profile (``GET /api/profiles/{id}``) or a spec (what ``POST`` takes)."""
    try:
        raw = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ProfileError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: a profile is a JSON object")
    try:
        if "id" in raw:
            return Profile.model_validate(raw)
        return new_profile(ProfileSpec.model_validate(raw))
    except ValidationError as exc:
        raise ProfileError(f"{path}: not a valid profile: {exc.errors()[0]['msg']}") from None


# Where in an interaction a location points: the position of the text a finding was made in.
_POSITIONS = (
    (re.compile(r"tool_calls\[\d+\]\.arguments"), "tool_call_arguments"),
    (re.compile(r"\.tool_result"), "tool_result"),
    (re.compile(r"^request\.tools\["), "tool_description"),
    (re.compile(r"^response\.text"), "assistant_answer"),
    (re.compile(r"decisions\["), "policy_decision"),
)


_ROLE_POSITIONS = {
    "user": "user_message",
    "system": "system_prompt",
    "developer": "system_prompt",
    "assistant": "assistant_message",
    "model": "assistant_message",  # Gemini's name for the assistant
}


def position(location: str, roles: dict[int, str]) -> str:
    """The kind of text a finding's location points at; ``roles``: message index -> role of the request."""
    for pattern, name in _POSITIONS:
        if pattern.search(location):
            return name
    m = re.match(r"request\.messages\[(\d+)\]", location)
    if m:
        role = roles.get(int(m.group(1)), "user")
        return _ROLE_POSITIONS.get(role, role)
    return "text"


def _events_of_interaction(item: dict[str, Any]) -> list[RequestEvent | ResponseEvent]:
    common = {
        "interaction_id": str(item.get("interaction_id") or "00000000-0000-0000-0000-000000000000"),
        "started_at": datetime.now(UTC),
        "profile_id": str(item.get("profile_id") or DEFAULT_PROFILE_ID),
        "agent_id": str(item.get("agent_id") or ""),
        "user_id": str(item.get("user_id") or ""),
        "provider": str(item.get("provider") or "openai"),
        "model": str(item.get("model") or ""),
    }
    route = str(item.get("route") or "/chat/completions")
    events: list[RequestEvent | ResponseEvent] = [
        RequestEvent(
            **common,
            route=route,
            request_received=item.get("request_received") or "",
            request_sent=item.get("request_sent"),
        )
    ]
    if item.get("response_body"):
        events.append(
            ResponseEvent(
                **common,
                route=route,
                status=int(item.get("status") or 200),
                response_body=item["response_body"],
                finished_at=datetime.now(UTC),
                latency_ms=0.0,
            )
        )
    return events


def _roles(line: dict[str, Any]) -> dict[int, str]:
    """Message index -> role, read from a request body when the line carries one (for the position column)."""
    body = line.get("request_received") or line.get("request_sent") or ""
    try:
        parsed = orjson.loads(body) if isinstance(body, str) and body else None
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    messages = parsed.get("messages") or parsed.get("contents") or parsed.get("input") or []
    if not isinstance(messages, list):
        return {}
    return {i: str(m.get("role", "user")) for i, m in enumerate(messages) if isinstance(m, dict)}


def scan_line(line: dict[str, Any], profile: Profile) -> tuple[str | None, list[Finding]]:
    """Every finding of one input line, thresholds not yet applied."""
    if "text" in line and isinstance(line["text"], str):
        location = str(line.get("location") or "text")
        return None, scan_text(line["text"], location, allowed_domains=frozenset(profile.allowed_domains))
    if line.get("type") == "request":
        event: RequestEvent | ResponseEvent = RequestEvent.model_validate(line)
        return event.interaction_id, findings_for(event, profile)
    if line.get("type") == "response":
        event = ResponseEvent.model_validate(line)
        return event.interaction_id, findings_for(event, profile)
    found: list[Finding] = []
    events = _events_of_interaction(line)
    for event in events:
        found += findings_for(event, profile)
    return events[0].interaction_id, found


def scan_lines(lines: Iterable[str], profile: Profile | None = None) -> Iterator[dict[str, Any]]:
    """One output object per finding at or above the profile's threshold for its category, or per unreadable
    line (``error``)."""
    profile = profile or default_profile()
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            parsed = orjson.loads(raw)
            if not isinstance(parsed, dict):
                raise ValueError("each line must be a JSON object")
            interaction_id, findings = scan_line(parsed, profile)
            roles = _roles(parsed)
        except Exception as exc:
            yield {"line": number, "error": str(exc)[:500]}
            continue
        for finding in findings:
            if finding.score < profile.guard.threshold(finding.category):
                continue
            out: dict[str, Any] = {
                "line": number,
                "finding": finding.detector,
                "position": position(finding.location, roles),
                **finding.model_dump(),
            }
            if interaction_id:
                out["interaction_id"] = interaction_id
            yield out
