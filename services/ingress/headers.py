"""Which headers cross the proxy, in each direction."""

from __future__ import annotations

from collections.abc import Iterable

from services.ingress.credentials import CREDENTIAL_HEADERS

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
# Cookies belong to Warden's own origin (the console's login session), never to the provider; and a provider's
# Set-Cookie would land on Warden's origin, where the console lives.
_NOT_FORWARDED_UP = _HOP_BY_HOP | {b"host", b"content-length", b"accept-encoding", b"expect", b"cookie"}
_NOT_FORWARDED_DOWN = _HOP_BY_HOP | {b"content-length", b"content-encoding", b"date", b"server", b"set-cookie"}
ATTRIBUTION_PREFIX = b"x-archestra-"
INTERACTION_ID_HEADER = b"x-warden-interaction-id"


def connection_named(headers: Iterable[tuple[bytes, bytes]]) -> set[bytes]:
    """The headers a ``Connection`` header names: hop-by-hop for this one connection (RFC 9110 §7.6.1)."""
    named: set[bytes] = set()
    for name, value in headers:
        # The length first: on every header of every request, most are not ten bytes long.
        if len(name) == 10 and name.lower() == b"connection":
            named.update(token.strip().lower() for token in value.split(b",") if token.strip())
    return named


def upstream_headers(
    headers: list[tuple[bytes, bytes]], credential: tuple[tuple[str, str], ...] | None = None
) -> list[tuple[str, str]]:
    """The client's headers for the upstream: credentials and provider headers pass, attribution, cookies and
    hop-by-hop (including those ``Connection`` names) do not. Bodies are asked for uncompressed so they can be
    recorded without inflating them. ``credential``: Warden's own headers for this upstream (none, for a provider
    that needs none), sent instead of every credential header of the client's; None: the client's pass."""
    named = connection_named(headers)
    skip = _NOT_FORWARDED_UP | named if named else _NOT_FORWARDED_UP
    if credential is not None:
        skip = skip | CREDENTIAL_HEADERS
    out = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in headers
        if name not in skip and not name.startswith(ATTRIBUTION_PREFIX)
    ]
    if credential is not None:
        out.extend(credential)
    out.append(("Accept-Encoding", "identity"))
    return out


def client_headers(raw: tuple[tuple[bytes, bytes], ...], interaction_id: bytes) -> list[tuple[bytes, bytes]]:
    """The upstream's response headers for the client (request ids and rate limits included), without hop-by-hop
    ones (including those its ``Connection`` names) and cookies."""
    lowered = [(name.lower(), value) for name, value in raw]
    named = connection_named(lowered)
    skip = _NOT_FORWARDED_DOWN | named if named else _NOT_FORWARDED_DOWN
    out = [(name, value) for name, value in lowered if name not in skip]
    out.append((INTERACTION_ID_HEADER, interaction_id))
    return out
