"""HTTP plumbing shared by the provider modules: the recorded request log, JSON answers and event streams."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from .script import Plan

# Fixed clock so that two runs of the same requests give the same bytes.
EPOCH = 1_750_000_000

# How many deltas a stream sends before `[[stream_fail]]` / `[[stream_error]]` cut it.
BREAK_AFTER_DELTAS = 2

SEQ_KEY = web.RequestKey("fake_seq", int)
JSON_KEY = web.RequestKey("fake_json", object)
RAW_KEY = web.RequestKey("fake_raw_body", bytes)


@dataclass(frozen=True)
class Received:
    """One request as it reached the fake upstream."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names in lower case
    body: Any  # the parsed JSON body, None when there is none or it is not JSON
    raw_body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class Canned:
    """An exact answer to serve next, whatever the request: `pieces` are written one by one; `chunked` sends them
    with `Transfer-Encoding: chunked` and no `Content-Length` (else the whole body with its length)."""

    pieces: tuple[bytes, ...]
    content_type: str = "application/json"
    status: int = 200
    chunked: bool = False


@dataclass(frozen=True)
class Fault:
    """A scripted failure of one answer, whatever the request asks (for tests of retries and fallbacks, where the
    same request goes to several upstreams and only some of them must fail)."""

    directives: str = ""
    """Directives of `script.py` applied as if the prompt held them: `[[error:500]]`, `[[stream_fail]]`, …"""
    headers: tuple[tuple[str, str], ...] = ()
    """Added to that answer (`Retry-After`, rate-limit resets)."""
    hang_up: bool = False
    """Close the connection without answering anything."""
    cut_before_first_byte: bool = False
    """Answer 200 with an event stream's headers, then close the connection before any byte of the body."""


@dataclass
class FakeState:
    """Mutable state of one fake upstream, shared by its handlers (all run on the server's event loop)."""

    chunk_delay: float = 0.0
    accepted_keys: frozenset[str] | None = None
    record: bool = True
    compress: bool = False
    response_headers: dict[str, str] = field(default_factory=dict)
    """Added to every answer, streamed or not (a test sets them to see what Warden passes to its client)."""
    received: list[Received] = field(default_factory=list)
    canned: list[Canned] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    """Applied to the next answers, one each, in order."""
    fault_always: Fault | None = None
    """Applied to every answer once `faults` is empty."""
    region: str | None = None
    """Bedrock: the AWS region this endpoint serves; a signature scoped to another is refused, as AWS refuses it."""
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def take_fault(self) -> Fault | None:
        return self.faults.pop(0) if self.faults else self.fault_always

    def next_seq(self) -> int:
        return next(self._counter)

    def reset(self, *, chunk_delay: float) -> None:
        self.received.clear()
        self.canned.clear()
        self.faults.clear()
        self.fault_always = None
        self.region = None
        self._counter = itertools.count(1)
        self.chunk_delay = chunk_delay
        self.response_headers.clear()


def dumps(payload: Any) -> bytes:
    return orjson.dumps(payload)


def json_response(
    payload: Any, *, status: int = 200, headers: Mapping[str, str] | None = None, charset: str | None = None
) -> web.Response:
    response = web.Response(body=dumps(payload), status=status, headers=dict(headers or {}))
    response.content_type = "application/json"
    if charset:
        response.charset = charset
    return response


async def truncated_json(request: web.Request, payload: Any, headers: Mapping[str, str]) -> web.StreamResponse:
    """`[[stream_fail]]` on a non-streaming request: announce the whole body, send half of it, hang up."""
    body = dumps(payload)
    response = web.StreamResponse(status=200, headers=dict(headers))
    response.content_type = "application/json"
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[: len(body) // 2])
    hang_up(request)
    raise StreamInterrupted(response)


def hang_up(request: web.Request) -> None:
    """Close the connection under a response that is still open."""
    if request.transport is not None:
        # close() (not abort()) so that what was written reaches the client before the connection goes.
        request.transport.close()


class StreamInterrupted(Exception):
    """Raised inside a handler to end a stream early; the server answers with the response as it stands."""

    def __init__(self, response: web.StreamResponse) -> None:
        super().__init__("stream interrupted")
        self.response = response


class EventStream:
    """A streamed answer: writes events, paces deltas and carries out the scripted breaks of the plan."""

    def __init__(
        self,
        request: web.Request,
        response: web.StreamResponse,
        plan: Plan,
        delay: float,
        error_event: Callable[[], bytes] | None,
    ) -> None:
        self._request = request
        self.response = response
        self._plan = plan
        self._delay = delay
        self._error_event = error_event
        self._deltas = 0

    @classmethod
    async def open(
        cls,
        request: web.Request,
        plan: Plan,
        state: FakeState,
        *,
        headers: Mapping[str, str],
        content_type: str = "text/event-stream",
        charset: str | None = "utf-8",
        error_event: Callable[[], bytes] | None = None,
    ) -> EventStream:
        response = web.StreamResponse(status=200, headers=dict(headers))
        response.content_type = content_type
        if charset:
            response.charset = charset
        await response.prepare(request)
        delay = plan.chunk_delay if plan.chunk_delay is not None else state.chunk_delay
        return cls(request, response, plan, delay, error_event)

    async def send(self, data: bytes, *, delta: bool = False, final: bool = False) -> None:
        """Write one event. `delta` marks content deltas (paced, counted); `final` the event that ends the answer."""
        if final:
            await self._break_if_scripted()
        if delta:
            if self._deltas and self._delay > 0:
                await asyncio.sleep(self._delay)
            self._deltas += 1
        await self.response.write(data)
        if delta and self._deltas >= BREAK_AFTER_DELTAS:
            await self._break_if_scripted()

    async def close(self) -> web.StreamResponse:
        await self.response.write_eof()
        return self.response

    async def _break_if_scripted(self) -> None:
        if self._plan.stream_fail:
            hang_up(self._request)
            raise StreamInterrupted(self.response)
        if self._plan.stream_error is not None and self._error_event is not None:
            await self.response.write(self._error_event())
            await self.response.write_eof()
            raise StreamInterrupted(self.response)


def sse(data: Any, event: str | None = None, *, newline: bytes = b"\n") -> bytes:
    """One server-sent event; `data` is JSON-encoded unless it is already bytes."""
    body = data if isinstance(data, bytes) else dumps(data)
    head = b"event: " + event.encode() + newline if event else b""
    return head + b"data: " + body + newline + newline


def obfuscation(seq: int, index: int) -> str:
    """A deterministic stand-in for OpenAI's random `obfuscation` padding of streamed deltas."""
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    length = (seq * 7 + index * 3) % 12 + 1
    return "".join(alphabet[(seq + index * 5 + k * 11) % len(alphabet)] for k in range(length))


def text_of(value: Any, keys: tuple[str, ...] = ("text",)) -> str:
    """The text of a message content that is either a string or a list of typed parts."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = [text_of(item, keys) for item in value]
        return "\n".join(part for part in parts if part)
    if isinstance(value, dict):
        for key in keys:
            if isinstance(value.get(key), str):
                return value[key]
    return ""


FRAMING_HEADER = "x-fake-framing"
"""A request header: `chunked` (or `chunked:N`, N bytes a chunk) makes a whole (non-streamed) answer go out with
`Transfer-Encoding: chunked` and no `Content-Length`, as some servers and proxies send JSON."""


async def send_pieces(
    request: web.Request, pieces: tuple[bytes, ...], *, status: int, content_type: str, headers: Mapping[str, str]
) -> web.StreamResponse:
    """A body written piece by piece with chunked transfer encoding (no Content-Length)."""
    response = web.StreamResponse(status=status, headers={**headers, "Content-Type": content_type})
    response.enable_chunked_encoding()
    await response.prepare(request)
    for piece in pieces:
        await response.write(piece)
    await response.write_eof()
    return response


def cut(body: bytes, size: int) -> tuple[bytes, ...]:
    return tuple(body[i : i + size] for i in range(0, len(body), size)) or (b"",)
