"""Reads the attribution headers: who sent the request and for whom."""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_LENGTH = 128
_ALLOWED = re.compile(r"^[A-Za-z0-9._:@+/=-]+$")

AGENT = b"x-archestra-agent-id"
USER = b"x-archestra-user-id"
SESSION = b"x-archestra-session-id"
_FIELDS = {AGENT: "agent_id", USER: "user_id", SESSION: "session_id"}


class AttributionError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Attribution:
    agent_id: str = ""
    user_id: str = ""
    session_id: str = ""


def read(headers: list[tuple[bytes, bytes]]) -> Attribution:
    """Attribution from raw ASGI headers; an over-long or malformed value raises ``AttributionError``."""
    found: dict[str, str] = {}
    for name, value in headers:
        field = _FIELDS.get(name)
        if field is None:
            continue
        text = value.decode("latin-1").strip()
        if len(text) > MAX_LENGTH:
            raise AttributionError(f"header {name.decode()} is longer than {MAX_LENGTH} characters")
        if text and not _ALLOWED.match(text):
            raise AttributionError(f"header {name.decode()} may only contain letters, digits and . _ : @ + / = -")
        found[field] = text
    return Attribution(**found) if found else Attribution()
