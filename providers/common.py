"""Small readers shared by the adapters: wire payloads are untrusted JSON, so every access checks its type."""

from __future__ import annotations

from typing import Any

import orjson

from plumbing.bounded import BoundedDict


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def as_int(value: Any) -> int | None:
    """A token count: an int (not a bool), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def parse_arguments(raw: Any) -> Any:
    """Tool-call arguments: parsed when they are a JSON string, else as they are (a partial stream stays a string)."""
    if isinstance(raw, str):
        if not raw:
            return {}
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw
    return raw


def parts_text(content: Any, kinds: frozenset[str] | None = None) -> str:
    """The text of a content that is a string or a list of typed parts, keeping the parts whose ``type`` is one of
    ``kinds`` (any part with a string ``text`` when ``kinds`` is None)."""
    if isinstance(content, str):
        return content
    texts = []
    for part in as_list(content):
        if isinstance(part, str):
            texts.append(part)
        elif (
            isinstance(part, dict)
            and isinstance(part.get("text"), str)
            and (kinds is None or part.get("type") in kinds)
        ):
            texts.append(part["text"])
    return "\n".join(texts)


def json_text(value: Any) -> str:
    """A value as text: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return orjson.dumps(value, default=str).decode()


def sum_tokens(*counts: int | None) -> int | None:
    """The sum of the counts that are known; None when none is."""
    known = [count for count in counts if count is not None]
    return sum(known) if known else None


class ViewCache(BoundedDict[Any]):
    """Recently built pieces of the common view, keyed by the raw JSON they came from.

    Agents re-send the whole history on every turn, and both the ingress (policies) and the guard read it: building
    each message's view once and reusing it turns that repeated work into a dictionary lookup. Entries are never
    changed after they are built (the policies copy what they rewrite), so sharing them is safe. The cache draws on
    the process's cache budget (bytes); ``capacity`` also bounds its entries.
    """

    def __init__(self, capacity: int = 20_000) -> None:
        super().__init__(capacity)

    def put(self, key: Any, value: Any, size: int | None = None) -> Any:
        # A key from ``cache_key`` is orjson's output, which keeps the room it reserved while writing (up to 16 times
        # its length): the stored key is an exact copy, so an entry costs what its size says.
        if isinstance(key, bytes):
            key = memoryview(key).tobytes()
        return super().put(key, value, size)


def cache_key(*parts: Any) -> bytes:
    return orjson.dumps(parts)
