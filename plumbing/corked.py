"""A transport that sends what is written to it in one turn of the event loop as one write.

uvicorn writes an answer's status line and headers, then its body, as two writes: two system calls and two TCP
segments for every whole answer. The HTTP server's protocol (``plumbing/http_limits.py``) hands its connection this
wrapper instead, so what the application sends without waiting (``http.response.start`` and a whole body) leaves
together at the end of the turn. Nothing is held longer than that: a stream's headers leave at the end of the turn
that started it, each of its chunks at the end of the turn that sent it. The bytes and their order are unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any


class CorkedTransport:
    __slots__ = ("_held", "_loop", "_scheduled", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._scheduled = False

    def write(self, data: bytes) -> None:
        self._held.append(data)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        held = self._held
        if not held:
            return
        self._held = []
        self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._held = []
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
