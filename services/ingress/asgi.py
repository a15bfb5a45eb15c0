"""Small ASGI helpers for the hot path (no framework: every microsecond here is added to every request)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    """The client went away before its body was complete; ``received``: how many bytes of it had arrived."""

    def __init__(self, received: int) -> None:
        super().__init__(received)
        self.received = received


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes | bytearray:
    """The whole body, up to ``limit`` bytes. A body that comes in pieces with a declared length is assembled in one
    buffer of that length, so it is held once (not its pieces and their join, twice)."""
    declared = header(scope, b"content-length")
    expected = int(declared) if declared is not None and declared.isdigit() else None
    if expected is not None and expected > limit:
        raise BodyTooLarge
    buffer: bytearray | None = None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone(size)
        chunk = message.get("body", b"")
        more = message.get("more_body", False)
        if chunk:
            end = size + len(chunk)
            if end > limit:
                raise BodyTooLarge
            if buffer is None and more and expected is not None and not chunks:
                buffer = bytearray(expected)
            if buffer is not None:
                buffer[size:end] = chunk
            else:
                chunks.append(chunk)
            size = end
        if not more:
            break
    if buffer is not None:
        del buffer[size:]  # in place: a body shorter than declared
        return buffer
    return b"".join(chunks) if len(chunks) != 1 else chunks[0]


async def send_bytes(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
