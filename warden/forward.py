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
    """An ASGI app that relays each HTTP request to the background process's socket, streaming both ways.

    Through the transport alone, not an ``httpx.AsyncClient``: a client keeps cookies between requests (one user's
    login session would ride on the next user's requests) and adds headers of its own (``Accept-Encoding``, a user
    agent) the browser never sent."""

    def __init__(self, socket_path: Path, timeout_s: float = 60.0) -> None:
        self.transport = httpx.AsyncHTTPTransport(uds=str(socket_path))
        self.timeout = {"connect": 2.0, "read": timeout_s, "write": timeout_s, "pool": 5.0}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        # The body keeps the framing it came with (Content-Length or chunked): the transport frames it the same way.
        headers = [
            (k, v)
            for k, v in scope["headers"]
            if (k not in HOP_BY_HOP or k == b"transfer-encoding") and k != PEER_HEADER.encode()
        ]
        peer = scope.get("client")
        if peer:
            headers.append((PEER_HEADER.encode(), str(peer[0]).encode()))
        path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        url = b"http://warden-background" + path + (b"?" + query if query else b"")
        request = httpx.Request(
            scope["method"],
            url.decode("latin-1"),
            headers=headers,
            stream=_Body(receive),
            extensions={"timeout": self.timeout},
        )
        try:
            response = await self.transport.handle_async_request(request)
        except httpx.TransportError:
            await send(
                {"type": "http.response.start", "status": 503, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": UNAVAILABLE})
            return
        try:
            out = [(k, v) for k, v in response.headers.raw if k.lower() not in HOP_BY_HOP]
            await send({"type": "http.response.start", "status": response.status_code, "headers": out})
            async for chunk in response.stream:  # type: ignore[union-attr]
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        await self.transport.aclose()


class _Body(httpx.AsyncByteStream):
    def __init__(self, receive: Receive) -> None:
        self.receive = receive

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in _body(self.receive):
            yield chunk


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
