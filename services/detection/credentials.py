"""Provider credentials scrubbed out of texts Warden records or logs: URLs, paths, exception messages.

Clients send their provider credential in a header (``Authorization``, ``x-api-key``, ``x-goog-api-key``,
``api-key``) or in the query (Gemini's ``?key=``). Warden forwards them and must store them nowhere; yet an upstream
URL ends up in exception texts (aiohttp names the URL it failed on), and a path can carry a query written
percent-encoded (``/models/x%3Fkey=…``, decoded into the path by the server). Every such text goes through
:func:`scrub_credentials` before it is recorded or logged.
"""

from __future__ import annotations

import re

MASK = "[REDACTED]"

_QUERY_NAMES = r"key|api[_\-]?key|apikey|access[_\-]?token|x-goog-api-key|x-api-key"
# A query parameter: after ?, & or ; (or their percent-encodings), so ``monkey=`` is left alone. The value runs to
# the next parameter, fragment, quote or whitespace.
_QUERY = re.compile(rf"((?:[?&;]|%3[fF]|%26|%3[bB])(?:{_QUERY_NAMES})(?:=|%3[dD]))[^&#\s'\"<>]*", re.IGNORECASE)
# A header written out: ``Authorization: Bearer …``, ``'x-api-key': '…'`` (a dict's repr), ``api-key=…``.
_HEADER = re.compile(
    r"((?:proxy-)?authorization|x-api-key|x-goog-api-key|api-key|x-amz-security-token)([\"']?\s*[:=]\s*[\"']?)"
    r"[^\"'\r\n,;}]*",
    re.IGNORECASE,
)


# A Warden key anywhere (``wk_`` and its url-safe secret): its prefix alone says which key it was.
_WARDEN_KEY = re.compile(r"\bwk_[A-Za-z0-9_-]{8,}")
# A password in a URL (``http://warden:secret@clickhouse:8123``), as a store's or broker's error may name it.
_USERINFO = re.compile(r"(://[^/\s:@'\"]+:)[^@/\s'\"]+@")


def scrub_credentials(text: str) -> str:
    """``text`` with the value of every credential-carrying query parameter or header, every password in a URL and
    every Warden key replaced by ``[REDACTED]``."""
    if "wk_" in text:
        text = _WARDEN_KEY.sub(MASK, text)
    if "=" not in text and ":" not in text and "%3" not in text.lower():
        return text
    text = _QUERY.sub(rf"\1{MASK}", text)
    text = _USERINFO.sub(rf"\1{MASK}@", text)
    return _HEADER.sub(rf"\1\2{MASK}", text)
