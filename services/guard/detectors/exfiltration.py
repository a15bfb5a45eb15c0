"""Data leaving through the model's actions: tool-call arguments and rendered answers that carry data out.

- URLs and e-mail addresses in tool-call arguments whose host is not in the allowed domains (when an allowlist is
  configured: without one, every destination would be "unknown" and the rule would only add noise).
- URLs whose query string or path carries a long or encoded value: a classic exfiltration channel whatever the host.
- Secrets and personal data inside tool-call arguments: the call would hand them to the tool.
- Markdown or HTML images in answers whose URL carries data: the client fetches them without any click.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from services.guard.detectors._hits import REDACTED, Hit
from services.guard.detectors.pii import find_pii
from services.guard.detectors.secrets import find_secrets

_URL = re.compile(r"\b(?:https?|ftp|wss?)://[^\s\"'<>()\[\]{}`]+", re.IGNORECASE)
_EMAIL = re.compile(r"(?<![\w.%+\-])[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}@((?:[A-Za-z0-9\-]{1,63}\.)+[A-Za-z]{2,24})\b")
_MD_IMAGE = re.compile(r"!\[[^\]\n]{0,200}\]\(\s*<?(https?://[^\s)>]+)>?(?:\s+\"[^\"]*\")?\s*\)", re.IGNORECASE)
_HTML_IMAGE = re.compile(r"<img\b[^>]{0,200}?\bsrc\s*=\s*[\"']?(https?://[^\s\"'>]+)", re.IGNORECASE)
_ENCODED = re.compile(r"^(?:[A-Za-z0-9+/_\-]{24,}={0,2}|(?:[0-9a-fA-F]{2}){16,}|(?:%[0-9A-Fa-f]{2}){8,}.*)$")
_DATA_KEYS = frozenset({"body", "content", "data", "text", "message", "payload", "html", "markdown", "file", "note"})


def host_allowed(host: str, allowed: frozenset[str]) -> bool:
    """A host is allowed when it is an allowed domain or a subdomain of one."""
    host = host.lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in allowed)


def carries_data(url: str) -> str | None:
    """Why a URL looks like it carries data out (a long or encoded query value or path segment), or None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    for _key, value in parse_qsl(parts.query, keep_blank_values=True):
        if len(value) >= 64:
            return "long query value"
        if len(value) >= 24 and _ENCODED.match(value):
            return "encoded query value"
        if value and (find_secrets(value) or find_pii(value)):
            return "sensitive query value"
    for segment in parts.path.split("/"):
        segment = unquote(segment)
        if len(segment) >= 48 and _ENCODED.match(segment):
            return "encoded path segment"
    return None


def _walk(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(path, string) for every string in parsed JSON arguments, e.g. ``arguments.headers.Authorization``."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            key = str(k)
            yield from _walk(v, f"{path}.{key}" if re.fullmatch(r"[A-Za-z_][\w\-]*", key) else f"{path}[{key!r}]")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]")


def _url_hits(text: str, allowed: frozenset[str]) -> list[Hit]:
    hits: list[Hit] = []
    for m in _URL.finditer(text):
        url = m.group(0).rstrip(".,;:!?")
        host = urlsplit(url).hostname or ""
        reason = carries_data(url)
        if reason:
            note = f"{reason} sent to {host}"
            hits.append(
                Hit(
                    "exfiltration.data_in_url",
                    "exfiltration",
                    "high",
                    0.9,
                    m.start(),
                    m.start() + len(url),
                    _mask_url(url),
                    note=f"{_mask_url(url)} ({note})",
                )
            )
        elif allowed and host and not host_allowed(host, allowed):
            hits.append(
                Hit(
                    "exfiltration.unlisted_destination",
                    "exfiltration",
                    "medium",
                    0.7,
                    m.start(),
                    m.start() + len(url),
                    _mask_url(url),
                    note=f"{_mask_url(url)} (host not allowed)",
                )
            )
    if allowed and "@" in text:
        for m in _EMAIL.finditer(text):
            if not host_allowed(m.group(1), allowed):
                masked = m.group(0)[:1] + REDACTED + "@" + m.group(1)
                hits.append(
                    Hit(
                        "exfiltration.unlisted_recipient",
                        "exfiltration",
                        "medium",
                        0.7,
                        m.start(),
                        m.end(),
                        masked,
                        note=f"{masked} (recipient domain not allowed)",
                    )
                )
    return hits


def _mask_url(url: str) -> str:
    """Scheme, host and path are shown; query values are the data and are masked."""
    parts = urlsplit(url)
    shown = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path[:60]}"
    return shown + ("?" + REDACTED if parts.query else "")


def scan_arguments(arguments: Any, *, allowed_domains: frozenset[str] = frozenset()) -> list[tuple[str, str, Hit]]:
    """(path, string, hit) for everything in a tool call's arguments that would move data out."""
    found: list[tuple[str, str, Hit]] = []
    for path, text in _walk(arguments, "arguments"):
        hits = _url_hits(text, allowed_domains)
        for h in find_secrets(text):
            hits.append(
                Hit(
                    h.detector.replace("secrets.", "exfiltration.secret_in_arguments."),
                    "exfiltration",
                    "critical" if h.severity in ("high", "critical") else "high",
                    h.score,
                    h.start,
                    h.end,
                    h.mask,
                )
            )
        for h in find_pii(text):
            severity = "high" if h.severity == "high" else "medium"
            if h.detector == "pii.email" and any(x.detector == "exfiltration.unlisted_recipient" for x in hits):
                continue  # already reported as the destination
            key = path.rsplit(".", 1)[-1].lower()
            # An address in a "to" field is where data goes, not data; PII in payload-like fields is the data.
            if h.detector == "pii.email" and key not in _DATA_KEYS:
                continue
            hits.append(
                Hit(
                    h.detector.replace("pii.", "exfiltration.pii_in_arguments."),
                    "exfiltration",
                    severity,
                    h.score * 0.9,
                    h.start,
                    h.end,
                    h.mask,
                )
            )
        found.extend((path, text, h) for h in hits)
    return found


def scan_rendered_text(text: str, *, allowed_domains: frozenset[str] = frozenset()) -> list[Hit]:
    """Images in an answer (markdown or HTML) whose URL carries data or points outside the allowed domains."""
    if "](" not in text and "<img" not in text.lower():
        return []
    hits: list[Hit] = []
    for pattern in (_MD_IMAGE, _HTML_IMAGE):
        for m in pattern.finditer(text):
            url = m.group(1)
            host = urlsplit(url).hostname or ""
            reason = carries_data(url)
            if reason:
                hits.append(
                    Hit(
                        "exfiltration.image_url_data",
                        "exfiltration",
                        "high",
                        0.9,
                        m.start(),
                        m.end(),
                        _mask_url(url),
                        note=f"image {_mask_url(url)} ({reason})",
                    )
                )
            elif allowed_domains and host and not host_allowed(host, allowed_domains):
                hits.append(
                    Hit(
                        "exfiltration.image_unlisted_host",
                        "exfiltration",
                        "medium",
                        0.6,
                        m.start(),
                        m.end(),
                        _mask_url(url),
                        note=f"image {_mask_url(url)} (host not allowed)",
                    )
                )
    return hits
