"""Server-sent events: split a stream into (event, data) pairs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from providers.common import NotJSON, loads_lenient


def iter_events(stream: bytes) -> Iterator[tuple[str | None, str]]:
    """Yield ``(event name, data)`` for every event in ``stream``, joining multi-line data as the spec says."""
    text = stream.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")
    for block in text.split("\n\n"):
        event: str | None = None
        data: list[str] = []
        for line in block.split("\n"):
            if line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            elif line.startswith("event:"):
                event = line[6:].strip()
        if data or event:
            yield event, "\n".join(data)


def encode_event(data: bytes, event: str | None = None) -> bytes:
    """One server-sent event carrying ``data`` (already encoded, on one line)."""
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + data + b"\n\n"


def json_events(raw: bytes) -> Iterator[dict[str, Any]]:
    """Every event in ``raw`` whose data is a JSON object, read as a client would (``loads_lenient``)."""
    for _, data in iter_events(raw):
        try:
            event = loads_lenient(data)
        except NotJSON:
            continue
        if isinstance(event, dict):
            yield event


def first_json_event(raw: bytes) -> dict[str, Any]:
    """The first event in ``raw`` whose data is a JSON object, or {} (used on single events held back by policy)."""
    return next(json_events(raw), {})
