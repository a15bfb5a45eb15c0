"""The console's paths, as a proxy process of ``warden serve`` answers them: forwarded to the background process.

The background process owns the store (chDB allows one process per data directory), so the read API, the admin API,
the logs viewer and ``/metrics`` are answered there, over a unix socket in a private directory; the user keeps one
port. The client's address travels in ``PEER_HEADER`` (the background listens on nothing else, so only a proxy
process can set it; one a client sent is dropped here).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from starlette.types import Receive, Scope, Send

PEER_HEADER = "x-warden-peer"
HOP_BY_HOP = frozenset(
    (b"connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"te", b"trailer", b"proxy-connection")
)
UNAVAILABLE = b'{"error": {"type": "console_unavailable", "message": "the background process is not answering"}}'


class Forward:
    """An ASGI app that relays each HTTP request to the background process's socket, streaming both ways."""

    def __init__(self, socket_path: Path, timeout_s: float = 60.0) -> None:
        self.client = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(socket_path)),
            base_url="http://warden-background",
            timeout=httpx.Timeout(timeout_s, connect=2.0),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = [(k, v) for k, v in scope["headers"] if k not in HOP_BY_HOP and k != PEER_HEADER.encode()]
        peer = scope.get("client")
        if peer:
            headers.append((PEER_HEADER.encode(), str(peer[0]).encode()))
        path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        url = path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
        request = self.client.build_request(scope["method"], url, headers=headers, content=_body(receive))
        try:
            response = await self.client.send(request, stream=True)
        except httpx.TransportError:
            await send(
                {"type": "http.response.start", "status": 503, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": UNAVAILABLE})
            return
        try:
            out = [(k, v) for k, v in response.headers.raw if k.lower() not in HOP_BY_HOP]
            await send({"type": "http.response.start", "status": response.status_code, "headers": out})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        await self.client.aclose()


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


class PeerFromHeader:
    """The background process's side: the client's address as the proxy process saw it."""

    def __init__(self, app: object) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            peer = None
            headers = []
            for key, value in scope["headers"]:
                if key == PEER_HEADER.encode():
                    peer = value.decode("latin-1")
                else:
                    headers.append((key, value))
            scope = {**scope, "headers": headers, "client": (peer, 0) if peer else None}
        await self.app(scope, receive, send)  # type: ignore[operator]
