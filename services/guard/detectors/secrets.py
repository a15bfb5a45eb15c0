"""Credentials in text, as the guard reports them: the catalogue's spans (``services.detection.secrets``, shared with
the ingress's redaction) turned into hits with masks for the evidence excerpts."""

from __future__ import annotations

from services.detection.secrets import SecretSpan
from services.detection.secrets import find_secrets as find_secret_spans
from services.guard.detectors._hits import REDACTED, Hit, mask_secret


def _hit(text: str, span: SecretSpan) -> Hit:
    value = text[span.start : span.end]
    # A private key's armour line names its type and is not secret; everything after it is.
    mask = value.split("\n", 1)[0][:48] + REDACTED if span.kind == "private_key" else mask_secret(value)
    return Hit(f"secrets.{span.kind}", "secret", span.severity, span.score, span.start, span.end, mask)


def find_secrets(text: str) -> list[Hit]:
    """Every credential in ``text``; overlapping matches keep the longest, most specific one."""
    return [_hit(text, span) for span in find_secret_spans(text)]
