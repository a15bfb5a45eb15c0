"""Small readers shared by the adapters: wire payloads are untrusted JSON, so every access checks its type."""

from __future__ import annotations

import json
from typing import Any

import orjson

from plumbing.bounded import BoundedDict
from schemas.view import Part, Usage


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


class NotJSON(ValueError):
    """Text that no JSON parser a client might use reads."""


def loads_lenient(data: bytes | str) -> Any:
    """A wire payload as the clients' own parsers read it.

    Strict JSON first (fast); else Python's ``json``, which, like the SDKs that use it, accepts ``NaN``, ``Infinity``
    and lone surrogate escapes. Whatever a client can read, the policies must read too.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise NotJSON(str(exc)) from None


def read_arguments(raw: Any) -> tuple[Any, str | None]:
    """Tool-call arguments (a JSON text, or an object already) and, when they are not a strict JSON object, why.

    Strict: ``NaN``, lone surrogates, trailing text or a value that is not an object are reported, since a policy
    cannot be sure what the tool will make of them. The arguments are then the raw text (or the value as it is)."""
    if isinstance(raw, str):
        if not raw:
            return {}, None
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return raw, f"not strict JSON ({exc})"
        return parsed, None if isinstance(parsed, dict) else "not a JSON object"
    if raw is None:
        return raw, None
    if not isinstance(raw, dict):
        return raw, "not a JSON object"
    return raw, None if _strict(raw) else "not strict JSON (NaN, Infinity or a lone surrogate)"


def _encodable(text: str) -> bool:
    """No lone surrogate (the only thing a Python string may hold that UTF-8 cannot)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def without_surrogates(value: Any) -> Any:
    """``value`` (read by ``loads_lenient``) with every lone surrogate written as its escape (``\\ud800``), so it
    can be encoded and recorded; the same object when it holds none."""
    if isinstance(value, str):
        return value if _encodable(value) else value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        items = {without_surrogates(key): without_surrogates(item) for key, item in value.items()}
        unchanged = len(items) == len(value) and all(k in value and items[k] is value[k] for k in items)
        return value if unchanged else items
    if isinstance(value, list):
        elements = [without_surrogates(item) for item in value]
        return value if all(new is old for new, old in zip(elements, value, strict=True)) else elements
    return value


def _strict(value: Any) -> bool:
    """Whether a value read leniently (``loads_lenient``) is one strict JSON could have given."""
    if isinstance(value, str):
        return _encodable(value)
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    if isinstance(value, dict):
        return all(_strict(key) and _strict(item) for key, item in value.items())
    if isinstance(value, list):
        return all(_strict(item) for item in value)
    return True


def parts_text(content: Any, kinds: frozenset[str] | None = None) -> str:
    """The text of a content that is a string or a list of typed parts, keeping the parts whose ``type`` is one of
    ``kinds`` (any part with a string ``text`` when ``kinds`` is None). A refusal part (``{"type": "refusal",
    "refusal": …}``, OpenAI's) is text too, unless ``kinds`` leaves ``refusal`` out: the model wrote it, and a refusal
    can quote a secret or carry an injection like any answer."""
    if isinstance(content, str):
        return content
    texts = []
    for part in as_list(content):
        if isinstance(part, str):
            texts.append(part)
        elif not isinstance(part, dict) or (kinds is not None and part.get("type") not in kinds):
            continue
        elif isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif part.get("type") == "refusal" and isinstance(part.get("refusal"), str):
            texts.append(part["refusal"])
    return "\n".join(texts)


def with_refusal(text: str, refusal: Any) -> str:
    """``text`` and the refusal a model gave beside or instead of it (OpenAI's ``refusal`` field): the policies and
    detectors read ``text``, so the refusal must be in it."""
    if not isinstance(refusal, str) or not refusal:
        return text
    return f"{text}\n{refusal}" if text else refusal


def beyond_text(parts: list[Part]) -> list[Part]:
    """``parts`` when one of them is more than text, else none: ``Message.parts`` is empty when the text says it
    all (the common case, which then costs nothing more)."""
    return parts if any(part.kind != "text" for part in parts) else []


def media_kind(mime_type: Any) -> str:
    """What a piece of inline data is, from its MIME type: ``image``, ``audio``, ``video`` or ``file``."""
    major = as_str(mime_type).partition("/")[0]
    return major if major in ("image", "audio", "video") else "file"


def error_message(body: Any) -> str | None:
    """The message of an ``{"error": …}`` envelope (OpenAI's, Anthropic's and Gemini's all have one), else None."""
    error = as_dict(body).get("error")
    if isinstance(error, dict):
        return as_str(error.get("message")) or json_text(error)
    return error if isinstance(error, str) and error else None


def json_text(value: Any) -> str:
    """A value as text: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return orjson.dumps(value, default=str).decode()


def usage_with_cache_apart(
    found: dict[str, Any], input_key: str, output_key: str, read_key: str, write_key: str
) -> Usage:
    """Usage from a provider that counts cache reads and writes apart from its input tokens (Anthropic, Bedrock): the
    common view's input is their sum."""
    if not found:
        return Usage()
    cache_read = as_int(found.get(read_key))
    cache_write = as_int(found.get(write_key))
    return Usage(
        input_tokens=sum_tokens(as_int(found.get(input_key)), cache_write, cache_read),
        output_tokens=as_int(found.get(output_key)),
        cached_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


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
