"""Masking secrets in an outgoing request with ``[REDACTED:<kind>]``, in the decoded JSON, never in its raw bytes.

What is a secret comes from the shared catalogue (``services.detection.secrets``), the very one the guard reports from,
so a redacting profile never forwards what the guard would flag as a secret in the strings it scans.

The body is walked as parsed JSON and each string is masked as decoded text; the caller serialises the result again.
So the decision and the bytes agree whatever the client's encoding (``\\u002d`` escapes, ``\\/``, escaped quotes
around a label, a newline between ``Bearer`` and its token), the mask can never cut through JSON syntax, and the body
keeps its shape: only string values change. Three refinements:

- a string value of an object is scanned together with its key when the key could be a credential's label
  (``"password": "…"``), so values recognisable only by their label are found in objects as they are in text;
- a string that itself holds JSON (OpenAI tool-call ``arguments``, tool results) is masked in its decoded strings too,
  then written back compactly, so escapes one level down hide nothing either;
- texts found clean are remembered by hash (bounded), so a conversation's history, resent with every turn, is scanned
  once rather than on every request.

Keys of objects are not masked (they are field names, part of the request's shape).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson

from schemas.events import PolicyDecision
from services.detection.secrets import may_be_label, secret_regions


@dataclass(frozen=True, slots=True)
class Redaction:
    location: str
    """Where, as a path into the request body: ``request.messages[3].content``."""
    kind: str
    count: int


_CLEAN_CAPACITY = 16384
_clean: set[int] = set()
"""Hashes of texts (or of a field's key and text) known to hold no secret. A false hit needs a 64-bit collision of
Python's keyed string hash."""


def _remember_clean(marker: int) -> None:
    if len(_clean) >= _CLEAN_CAPACITY:
        _clean.clear()  # simple bound; the history re-enters on its next turn
    _clean.add(marker)


def _masked(text: str, counts: dict[str, int], start: int = 0, end: int | None = None) -> str | None:
    """``text[start:end]`` with every secret found in ``text`` masked (what lies outside, a label, only gives context);
    None when there is none there."""
    spans = secret_regions(text)
    if not spans:
        return None
    end = len(text) if end is None else end
    parts: list[str] = []
    position = start
    for span in spans:
        if span.end <= start or span.start >= end:
            continue
        parts += (text[position : max(span.start, start)], f"[REDACTED:{span.kind}]")
        position = min(span.end, end)
        counts[span.kind] = counts.get(span.kind, 0) + 1
    if not parts:
        return None
    parts.append(text[position:end])
    return "".join(parts)


def redact_secrets(text: str) -> tuple[str, list[tuple[str, int]]]:
    """``text`` with every secret replaced by ``[REDACTED:<kind>]``, and how many of each kind were masked.

    Idempotent: a redacted text has nothing left to redact.
    """
    counts: dict[str, int] = {}
    masked = _redact_string(text, None, counts, nested=False)
    return (text, []) if masked is text else (masked, list(counts.items()))


def _redact_string(text: str, key: str | None, counts: dict[str, int], nested: bool = True) -> str:
    """One string value (of the object field ``key``, if any), masked; the same object when it holds no secret.
    ``nested``: JSON held in the string is masked in its own decoded strings too (and written back compactly)."""
    # A key that could be a credential's label (``password``, ``api_key``) is read with its value, as in a text.
    labelled = key is not None and may_be_label(key)
    if len(text) < (4 if labelled else 8):  # shorter than any secret (a labelled one: than any value taken for one)
        return text
    holds_json = text.lstrip()[:1] in ("{", "[")
    # Clean as a whole text is not clean one level down: such a text is remembered only after a nested scan.
    marker = None if holds_json and not nested else hash((key, text)) if labelled else hash(text)
    if marker in _clean:
        return text
    original = text
    if holds_json and nested:
        try:
            inner = orjson.loads(text)
        except orjson.JSONDecodeError:
            inner = None
        if isinstance(inner, dict | list):
            found: list[Redaction] = []
            _walk(inner, [], found)
            if found:
                for redaction in found:
                    counts[redaction.kind] = counts.get(redaction.kind, 0) + redaction.count
                text = serialise(_walk(exact(text), [], [])).decode()
    if labelled:
        label = f'"{key}": "'
        masked = _masked(f'{label}{text}"', counts, len(label), len(label) + len(text))
    else:
        masked = _masked(text, counts)
    if masked is not None:
        return masked
    if text is original and marker is not None:
        _remember_clean(marker)
    return text


def _leaf(text: str, key: str | None, path: list[str | int], step: str | int, found: list[Redaction]) -> str:
    """A string in the body (``step`` within ``path``), masked, what was masked noted in ``found``."""
    counts: dict[str, int] = {}
    masked = _redact_string(text, key, counts)
    if counts:
        where = "".join(f"[{s}]" if isinstance(s, int) else f".{s}" if s else "" for s in (*path, step))
        found.extend(Redaction(f"request{where}", kind, count) for kind, count in counts.items())
    return masked


def _walk(value: Any, path: list[str | int], found: list[Redaction]) -> Any:
    """``value`` with secrets masked in every string, noting what was masked where (``path`` leads to ``value``); the
    same object when none was found (copy on write). Strings shorter than any secret cost no call: most of a body."""
    if isinstance(value, dict):
        changed: dict[str, Any] | None = None
        for name, item in value.items():
            if isinstance(item, str):
                if len(item) < 4:
                    continue
                new = _leaf(item, name, path, name, found)
            elif isinstance(item, dict | list):
                path.append(name)
                new = _walk(item, path, found)
                path.pop()
            else:
                continue
            if new is not item:
                if changed is None:
                    changed = dict(value)
                changed[name] = new
        return value if changed is None else changed
    if isinstance(value, list):
        elements: list[Any] | None = None
        for index, item in enumerate(value):
            if isinstance(item, str):
                if len(item) < 8:
                    continue
                new = _leaf(item, None, path, index, found)
            elif isinstance(item, dict | list):
                path.append(index)
                new = _walk(item, path, found)
                path.pop()
            else:
                continue
            if new is not item:
                if elements is None:
                    elements = list(value)
                elements[index] = new
        return value if elements is None else elements
    return value


def redact_json(value: Any) -> tuple[Any, tuple[Redaction, ...]]:
    """The parsed request body ``value`` with every secret masked, and what was masked where. The same object, and no
    redactions, when it holds none; ``value`` itself is never changed."""
    found: list[Redaction] = []
    if isinstance(value, str):
        return _leaf(value, None, [], "", found), tuple(found)
    masked = _walk(value, [], found)
    return masked, tuple(found)


def exact(raw: bytes | str) -> Any:
    """JSON parsed for writing back: the standard library keeps integers beyond 64 bits exact (``orjson``, used to
    read requests fast, makes them floats)."""
    return json.loads(raw)


def serialise(value: Any) -> bytes:
    """Compact JSON, UTF-8, as ``orjson`` writes it, for a tree from :func:`exact`."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def redaction_decisions(redactions: tuple[Redaction, ...]) -> list[PolicyDecision]:
    """One recorded decision per kind of secret masked."""
    totals: dict[str, int] = {}
    for redaction in redactions:
        totals[redaction.kind] = totals.get(redaction.kind, 0) + redaction.count
    return [
        PolicyDecision(kind="redaction", reason=f"masked {count} {kind}", enforced=True)
        for kind, count in totals.items()
    ]
