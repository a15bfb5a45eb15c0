"""What one HTTP request may cost the server before the application sees it: header bytes, header count, and the time
to send them.

uvicorn with httptools bounds none of these (the parser keeps a header of any size, and a connection that sends half
a request is kept for ever), so the server runs this subclass of its httptools protocol. It counts the bytes of the
request line and headers before they reach the parser, counts the headers, and arms a timer from a request's first
byte (or from the connection) to its last header. A request over a limit is not parsed further: the application is
called once with what was read (method, path, the complete headers so far, no body) and the refusal in
``scope["extensions"][REFUSAL]`` (``{"status": 431 | 408, "message": …}``), so it can answer in its own shape and
record the attempt; the connection is closed after that answer. A connection that never started a request is
simply closed when the timer fires.

The time to receive a body is bounded in the application, which reads it (the ingress answers 408 the same way).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from plumbing.corked import CorkedTransport
from schemas.errors import error_json

REFUSAL = "warden.refusal"
"""The ``scope["extensions"]`` key of a request refused before its headers were complete."""
_HEAD_END = b"\r\n\r\n"


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_header_bytes: int = 64 * 1024
    max_header_count: int = 100
    header_timeout_s: float = 10.0


def refusal(scope: dict[str, Any]) -> dict[str, Any] | None:
    """The refusal the server attached to ``scope``, if any."""
    extensions = scope.get("extensions")
    return extensions.get(REFUSAL) if extensions else None


class _Refused(Exception):
    """Raised inside a parser callback to stop the parser; the refusal itself is on the protocol."""


def protocol_class(limits: HttpLimits) -> type[HttpToolsProtocol]:
    """uvicorn's ``http`` setting: the limited protocol, bound to ``limits``."""
    return type("LimitedHttpToolsProtocol", (LimitedHttpToolsProtocol,), {"limits": limits})


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    limits: HttpLimits = HttpLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0
        self._tail = b""
        self._began = False
        self._header_count = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._refusal: dict[str, Any] | None = None

    # -- connection -----------------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Every write of this connection (answers, uvicorn's own errors) goes through it, so their order is kept.
        self.transport = CorkedTransport(transport, self.loop)  # type: ignore[assignment]
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            return  # the request was refused: nothing more is read from this connection
        if self._in_head:
            if self._head_timer is None:
                self._arm_head_timer()  # the next request on a kept-alive connection has begun
            room = self.limits.max_header_bytes - self._head_bytes
            if not self._count_head(data):
                # What fits under the limit is parsed (the request line, the complete headers), then no more.
                with contextlib.suppress(httptools.HttpParserError):
                    if room > 0:
                        self.parser.feed_data(data[:room])
                self._refusal = None
                self._refuse(431, f"the request line and headers exceed {self.limits.max_header_bytes} bytes")
                return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError:
            if self._refusal is None:
                raise
            self._answer_refusal()
        except httptools.HttpParserError:
            message = "Invalid HTTP request received."
            self.logger.warning(message)
            self.send_400_response(message)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def _count_head(self, data: bytes) -> bool:
        """Count the bytes of ``data`` up to the end of the headers; False when they exceed the limit (before the
        parser has kept them)."""
        joint = (self._tail + data[:3]).find(_HEAD_END)  # the end split across two reads comes first
        if joint >= 0:
            counted = joint + len(_HEAD_END) - len(self._tail)
        else:
            end = data.find(_HEAD_END)
            counted = end + len(_HEAD_END) if end >= 0 else len(data)
        self._head_bytes += counted
        self._tail = (self._tail + data)[-3:] if len(data) < 3 else data[-3:]
        return self._head_bytes <= self.limits.max_header_bytes

    # -- parser callbacks -----------------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._began = True
        self._header_count = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_header_count:
            self._refusal = {"status": 431, "message": f"more than {self.limits.max_header_count} request headers"}
            raise _Refused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.limits.max_header_bytes:
            self._refusal = {
                "status": 431,
                "message": f"the request line and headers exceed {self.limits.max_header_bytes} bytes",
            }
            raise _Refused
        self._disarm_head_timer()
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes, self._tail, self._began = True, 0, b"", False

    # -- refusing -------------------------------------------------------------------------------------------------

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self._refusal is not None:
            return
        if not self._began:
            self.transport.close()  # no request was started: nothing to answer or record
            return
        self._refuse(408, f"the request headers did not arrive within {self.limits.header_timeout_s:g} s")

    def _refuse(self, status: int, message: str) -> None:
        self._refusal = {"status": status, "message": message}
        self._answer_refusal()

    def _answer_refusal(self) -> None:
        """Call the application once with what was read of the refused request, then close the connection."""
        self._disarm_head_timer()
        self.flow.pause_reading()
        busy = self.cycle is not None and not self.cycle.response_complete
        if not self._began or busy:
            self.transport.close()  # nothing of this request to answer, or an answer in progress on this connection
            return
        scope: Any = self.scope
        url = self.url
        method = self.parser.get_method() if url else b"GET"
        scope["method"] = method.decode("ascii", "replace")
        # Only the path: the query may be cut short, and it may carry a credential (``?key=``).
        raw_path = url.split(b"?", 1)[0] or b"/"
        scope["raw_path"] = raw_path
        scope["path"] = raw_path.decode("latin-1")
        scope["query_string"] = b""
        scope["extensions"] = {**(scope.get("extensions") or {}), REFUSAL: self._refusal}
        self.cycle = RequestResponseCycle(
            scope=scope,
            transport=_LingeringClose(self.transport, self.loop),  # type: ignore[arg-type]
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=False,
            keep_alive=False,
            on_response=self.on_response_complete,
        )
        self.cycle.more_body = False
        self._start_asgi_task(self.cycle, self.app)


class _LingeringClose:
    """The transport of a refused request's answer. Closing a socket the client is still writing to (the rest of a
    16 MB header) makes the kernel reset the connection, and the client loses the answer with it: so closing first
    ends the answer (half-close), lets the client's bytes be read and dropped (``data_received`` ignores them) for
    at most ``LINGER_S``, then closes."""

    LINGER_S = 2.0

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop

    def close(self) -> None:
        transport = self._transport
        if transport.is_closing():
            return
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        transport.resume_reading()
        self._loop.call_later(self.LINGER_S, transport.close)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class AnswerRefusals:
    """In front of an application that does not answer refusals in a shape of its own: a JSON error, and nothing
    of the refused request reaches the application."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        refused = refusal(scope) if scope["type"] == "http" else None
        if refused is None:
            await self.app(scope, receive, send)
            return
        body = orjson.dumps(error_json(refused["message"], "request_error"))
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": refused["status"], "headers": headers})
        await send({"type": "http.response.body", "body": body})
