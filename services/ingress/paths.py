"""Whether a request's path may be forwarded: the upstream path must never climb above the provider's base path.

The path is judged on the bytes the client sent (``raw_path``), segment by segment, each decoded until it no longer
changes (so ``%252e%252e`` is judged as ``..``, as an upstream that decodes twice would see it). Refused: dot
segments (``.`` and ``..``, also as ``..;param``), a slash or backslash inside a segment (an encoded ``/`` or ``\\``
would cut the path elsewhere than the client's separators), and control characters. Nothing else is rewritten.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

MAX_DECODE_ROUNDS = 3
"""A segment still changing after this many decodings is refused outright: no client encodes a path three times."""


_SUSPECT = re.compile(rb"[%\\\x00-\x1f\x7f]|/\.")
"""What any refused path contains somewhere: most paths have none of it and are passed after one scan."""


def unsafe_path(raw_path: bytes, encoded_slash: bool = False) -> str | None:
    """Why this path may not be forwarded; None when it may. ``encoded_slash``: the upstream receives the path as sent
    and reads an encoded ``/`` as part of a segment (Bedrock's model ARNs); each piece it separates is still judged."""
    if not _SUSPECT.search(raw_path):
        return None
    for segment in raw_path.decode("latin-1").split("/"):
        decoded = _decoded(segment)
        if decoded is None:
            return "the request path is percent-encoded too many times"
        if "\\" in decoded or ("/" in decoded and not encoded_slash):
            return "the request path may not contain an encoded slash or a backslash"
        if any(piece.split(";", 1)[0] in (".", "..") for piece in decoded.split("/")):
            return "the request path may not contain '.' or '..' segments (encoded or not)"
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in decoded):
            return "the request path may not contain control characters"
    return None


def _decoded(segment: str) -> str | None:
    for _ in range(MAX_DECODE_ROUNDS + 1):
        if "%" not in segment:
            return segment
        decoded = unquote(segment, errors="replace")
        if decoded == segment:
            return segment
        segment = decoded
    return None
