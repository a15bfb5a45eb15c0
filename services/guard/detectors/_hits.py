"""The raw result of a detector over one text, and its conversion into findings with masked excerpts.

Detectors return :class:`Hit` spans rather than findings so that, when one text holds several sensitive values, every
excerpt taken from it can mask all of them, not only the one it is about.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.guard.findings import Category, Finding, Severity

REDACTED = "…[REDACTED]"
_CONTEXT = 24
_MAX_EXCERPT = 160


@dataclass(frozen=True, slots=True)
class Hit:
    detector: str
    category: Category
    severity: Severity
    score: float
    start: int
    end: int
    mask: str | None = None
    """Replacement for the span in any excerpt; None when the span is not sensitive (e.g. an injection phrase)."""
    note: str = ""
    """Excerpt to use instead of the surrounding text (e.g. the decoded form of a hidden payload)."""


def mask_secret(value: str) -> str:
    """Keep a short prefix that tells the kind of credential (``sk-p``, ``AKIA``) but never enough to use it."""
    keep = min(4, len(value) // 5)
    return value[:keep] + REDACTED


def mask_tail(value: str, keep: int = 4) -> str:
    """Keep the last digits only, as receipts do for payment cards."""
    digits = [c for c in value if c.isalnum()]
    keep = min(keep, len(digits) // 4)
    return REDACTED.lstrip("…") + ("…" + "".join(digits[-keep:]) if keep else "")


_WHITESPACE = str.maketrans("\n\r\t", "   ")


def _printable(text: str) -> str:
    """One line, with invisible and control characters shown as escapes so the excerpt reveals what was hidden."""
    flat = text.translate(_WHITESPACE)
    if flat.isascii() and flat.isprintable():
        return flat
    out = []
    for ch in text:
        code = ord(ch)
        if ch in "\n\r\t":
            out.append(" ")
        elif code < 32 or 0x7F <= code < 0xA0 or 0x200B <= code <= 0x200F or 0x202A <= code <= 0x202E:
            out.append(f"\\u{code:04x}")
        elif 0x2060 <= code <= 0x206F or code == 0xFEFF or 0xE0000 <= code <= 0xE007F:
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


def excerpt(text: str, hit: Hit, sensitive: list[Hit]) -> str:
    """The hit with a little context, every sensitive span in the window replaced by its mask; ``sensitive`` is
    sorted by start."""
    if hit.note:
        return _printable(hit.note)[:_MAX_EXCERPT]
    lo = max(0, hit.start - _CONTEXT)
    hi = min(len(text), hit.end + _CONTEXT)
    if hit.mask is None:
        hi = min(hi, hit.start + _MAX_EXCERPT)
    # A sensitive span cut by the window edge would leak its visible part: widen the window over it, then mask it.
    for s in sensitive:
        if s.start < lo < s.end:
            lo = s.start
        if s.start < hi < s.end:
            hi = s.end
    parts: list[str] = []
    pos = lo
    for s in sensitive:  # in order of start
        if s.end <= lo or s.start >= hi or s.start < pos:
            continue
        parts.append(_printable(text[pos : s.start]))
        parts.append(s.mask or REDACTED)
        pos = s.end
    parts.append(_printable(text[pos:hi]))
    body = "".join(parts).strip()
    return ("…" if lo > 0 else "") + body + ("…" if hi < len(text) else "")


def _start(hit: Hit) -> int:
    return hit.start


def to_findings(text: str, hits: list[Hit], location: str, sensitive: list[Hit] | None = None) -> list[Finding]:
    """Findings for the hits found in one text at one location; ``sensitive`` are the spans to mask in excerpts."""
    masks = sorted((h for h in (sensitive if sensitive is not None else hits) if h.mask is not None), key=_start)
    return [
        Finding(
            detector=h.detector,
            category=h.category,
            severity=h.severity,
            score=round(min(1.0, max(0.0, h.score)), 4),
            location=location,
            excerpt=excerpt(text, h, masks),
        )
        for h in hits
    ]
