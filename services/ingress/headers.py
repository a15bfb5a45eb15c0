"""Which headers cross the proxy, in each direction."""

from __future__ import annotations

_HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"te",
    b"trailer",
    b"trailers",
    b"transfer-encoding",
    b"upgrade",
}
_NOT_FORWARDED_UP = _HOP_BY_HOP | {b"host", b"content-length", b"accept-encoding", b"expect"}
_NOT_FORWARDED_DOWN = _HOP_BY_HOP | {b"content-length", b"content-encoding", b"date", b"server"}
ATTRIBUTION_PREFIX = b"x-archestra-"
INTERACTION_ID_HEADER = b"x-warden-interaction-id"


def upstream_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """The client's headers for the upstream: credentials and provider headers pass, attribution and hop-by-hop do
    not. Bodies are asked for uncompressed so they can be recorded without inflating them."""
    out = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in headers
        if name not in _NOT_FORWARDED_UP and not name.startswith(ATTRIBUTION_PREFIX)
    ]
    out.append(("Accept-Encoding", "identity"))
    return out


def client_headers(raw: tuple[tuple[bytes, bytes], ...], interaction_id: bytes) -> list[tuple[bytes, bytes]]:
    """The upstream's response headers for the client (request ids and rate limits included)."""
    out = [(name.lower(), value) for name, value in raw if name.lower() not in _NOT_FORWARDED_DOWN]
    out.append((INTERACTION_ID_HEADER, interaction_id))
    return out
