"""A deterministic local stand-in for the OpenAI, Anthropic and Gemini APIs.

In tests::

    with FakeUpstream("anthropic") as fake:
        client = anthropic.Anthropic(api_key="k", base_url=fake.base_url)
        client.messages.create(...)
        assert fake.received[-1].headers["x-api-key"] == "k"

Standalone, for benchmarks (foreground, no request log)::

    python -m tests.fakes.upstream --provider openai --port 8001
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import threading
from collections.abc import Collection, Iterator
from types import TracebackType
from typing import Literal, Protocol

import orjson
from aiohttp import web

from .anthropic_api import AnthropicFake
from .azure_api import AzureFake
from .bedrock_api import BedrockFake
from .gemini_api import GeminiFake
from .openai_api import OpenAIFake
from .script import FORCED_DIRECTIVES, DirectiveError
from .wire import (
    FRAMING_HEADER,
    JSON_KEY,
    RAW_KEY,
    SEQ_KEY,
    Canned,
    FakeState,
    Fault,
    Received,
    StreamInterrupted,
    cut,
    hang_up,
    send_pieces,
)

FAULT_KEY = web.RequestKey("fake_fault", Fault)

Provider = Literal["openai", "anthropic", "gemini", "bedrock", "azure"]
PROVIDERS: tuple[Provider, ...] = ("openai", "anthropic", "gemini", "bedrock", "azure")

# How long stop() lets in-flight requests (a `[[slow:...]]` one, say) finish before cancelling them.
SHUTDOWN_TIMEOUT = 1.0


class ProviderFake(Protocol):
    def routes(self) -> list[web.RouteDef]: ...
    def authenticate(self, request: web.Request) -> web.StreamResponse | None: ...
    def error(self, request: web.Request, status: int, message: str | None = None) -> web.Response: ...
    def not_found(self, request: web.Request) -> web.Response: ...


def _provider_fake(provider: Provider, state: FakeState) -> ProviderFake:
    if provider == "openai":
        return OpenAIFake(state)
    if provider == "anthropic":
        return AnthropicFake(state)
    if provider == "gemini":
        return GeminiFake(state)
    if provider == "bedrock":
        return BedrockFake(state)
    if provider == "azure":
        return AzureFake(state)
    raise ValueError(f"unknown provider {provider!r}; expected one of {', '.join(PROVIDERS)}")


BAD_STATUS_LINE = b"[[bad_status_line]]"
"""Anywhere in a request body: the fake answers with a malformed status line (whatever the provider)."""


def build_app(provider: Provider, state: FakeState) -> web.Application:
    """The aiohttp application of one provider's fake; `state` holds its settings and request log."""
    fake = _provider_fake(provider, state)

    @web.middleware
    async def envelope(request: web.Request, handler: web.Handler) -> web.StreamResponse:
        request[SEQ_KEY] = state.next_seq()
        raw = await request.read()
        body = _parse_json(raw)
        request[JSON_KEY] = body
        request[RAW_KEY] = raw
        if state.record:
            # Recorded before answering, so a test that got its answer always finds the request here.
            state.received.append(
                Received(
                    method=request.method,
                    path=request.raw_path.partition("?")[0] if provider == "bedrock" else request.path,
                    query=dict(request.query),
                    headers={name.lower(): value for name, value in request.headers.items()},
                    body=body,
                    raw_body=raw,
                )
            )
        fault = state.take_fault()
        # Set for every request: a keep-alive connection serves its requests in one task, so one context.
        FORCED_DIRECTIVES.set(fault.directives if fault is not None else "")
        if fault is not None:
            if fault.hang_up and request.transport is not None:
                request.transport.close()
                return web.Response()
            if fault.cut_before_first_byte:
                response = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream"})
                await response.prepare(request)
                hang_up(request)
                return response
            request[FAULT_KEY] = fault
        if BAD_STATUS_LINE in raw and request.transport is not None:
            # A broken upstream: a status line no HTTP client can parse, then the connection is gone.
            request.transport.write(b"HTTP/1.1 2OO garbled\r\n\r\n")
            request.transport.close()
            return web.Response()
        if request.match_info.http_exception is not None and not state.canned:
            return fake.not_found(request)
        denied = fake.authenticate(request)
        if denied is not None:
            return denied
        if state.canned:  # served on any path, so routes the fake does not model can be scripted too
            canned = state.canned.pop(0)
            if canned.chunked:
                return await send_pieces(
                    request, canned.pieces, status=canned.status, content_type=canned.content_type, headers={}
                )
            body = b"".join(canned.pieces)
            return web.Response(body=body, status=canned.status, headers={"Content-Type": canned.content_type})
        try:
            response = await handler(request)
        except DirectiveError as exc:
            response = fake.error(request, 400, f"fake upstream: {exc}")
        except StreamInterrupted as exc:
            return exc.response
        framing = request.headers.get(FRAMING_HEADER, "")
        if framing.startswith("chunked") and isinstance(response, web.Response) and not response.prepared:
            size = int(framing.partition(":")[2] or 0) or len(response.body or b"") or 1
            headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")}
            return await send_pieces(
                request,
                cut(bytes(response.body or b""), size),
                status=response.status,
                content_type=response.headers.get("Content-Type", "application/json"),
                headers=headers,
            )
        if state.compress and not response.prepared:
            # Like the real APIs, compress whole bodies in an encoding the client accepts.
            response.enable_compression()
        return response

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(state.response_headers)
        fault = request.get(FAULT_KEY)
        if fault is not None:
            response.headers.update(dict(fault.headers))

    app = web.Application(middlewares=[envelope], client_max_size=64 * 1024 * 1024)
    app.on_response_prepare.append(add_headers)
    app.add_routes(fake.routes())
    return app


def _parse_json(raw: bytes) -> object:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class FakeUpstream:
    """One provider's fake API, served on 127.0.0.1 from a background thread with its own event loop."""

    def __init__(
        self,
        provider: Provider = "openai",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        chunk_delay: float = 0.0,
        accepted_keys: Collection[str] | None = None,
        record: bool = True,
        compress: bool = False,
    ) -> None:
        """`chunk_delay`: seconds between streamed deltas (a `[[chunks:N:DELAY]]` directive overrides it).
        `accepted_keys`: when given, any other credential is answered as the provider answers a wrong key.
        `record`: keep the `received` log (turn off for long benchmark runs).
        `compress`: gzip/deflate non-streamed bodies when the request's Accept-Encoding allows, as the real APIs do."""
        self.provider: Provider = provider
        self._host = host
        self._requested_port = port
        self._default_chunk_delay = chunk_delay
        self._state = FakeState(
            chunk_delay=chunk_delay,
            accepted_keys=frozenset(accepted_keys) if accepted_keys is not None else None,
            record=record,
            compress=compress,
        )
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # -- what tests read ------------------------------------------------------------------------------------------

    @property
    def received(self) -> list[Received]:
        """Every request that reached this fake, oldest first."""
        return self._state.received

    @property
    def last(self) -> Received:
        if not self._state.received:
            raise AssertionError(f"the fake {self.provider} upstream has received no request")
        return self._state.received[-1]

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the fake upstream is not started")
        return self._port

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`, the root every route hangs from."""
        return f"http://{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The base URL the provider's SDK (or Warden's upstream setting) takes, like the real one's default:
        OpenAI `…/v1`, Anthropic and Gemini the root, Azure the resource's endpoint (the root)."""
        return f"{self.url}/v1" if self.provider == "openai" else self.url

    @property
    def region(self) -> str | None:
        return self._state.region

    @region.setter
    def region(self, region: str | None) -> None:
        """Bedrock: accept only signatures scoped to ``region`` (None: any region); ``reset()`` clears it."""
        self._state.region = region

    @contextlib.contextmanager
    def answering_with_headers(self, headers: dict[str, str]) -> Iterator[None]:
        """Add ``headers`` to every answer inside the block."""
        self._state.response_headers.update(headers)
        try:
            yield
        finally:
            self._state.response_headers.clear()

    @property
    def chunk_delay(self) -> float:
        return self._state.chunk_delay

    @chunk_delay.setter
    def chunk_delay(self, seconds: float) -> None:
        self._state.chunk_delay = seconds

    def answer_next(
        self,
        body: bytes | tuple[bytes, ...],
        *,
        content_type: str = "application/json",
        chunked: bool = False,
        status: int = 200,
    ) -> None:
        """Serve exactly these bytes (one body, or pieces written one by one) to the next request, whatever it asks."""
        pieces = (body,) if isinstance(body, bytes) else tuple(body)
        self._state.canned.append(Canned(pieces, content_type, status, chunked))

    def fail_next(self, *faults: Fault) -> None:
        """Fail the next answers as scripted, one fault each, whatever the requests ask."""
        self._state.faults.extend(faults)

    def fail_always(self, fault: Fault | None) -> None:
        """Fail every answer so (once the `fail_next` ones are spent); None: answer normally again."""
        self._state.fault_always = fault

    def reset(self) -> None:
        """Forget received requests, restart the id counter and restore the constructor's chunk delay."""
        self._state.reset(chunk_delay=self._default_chunk_delay)

    # -- lifecycle ------------------------------------------------------------------------------------------------

    def start(self) -> FakeUpstream:
        if self._thread is not None:
            raise RuntimeError("the fake upstream is already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._requested_port))
        self._port = sock.getsockname()[1]
        loop = _new_loop()
        runner = web.AppRunner(
            build_app(self.provider, self._state),
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
        )
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.SockSite(runner, sock).start())
        self._loop, self._runner = loop, runner
        self._thread = threading.Thread(target=loop.run_forever, name=f"fake-{self.provider}-upstream", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        loop, runner, thread = self._loop, self._runner, self._thread
        if loop is None or runner is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=SHUTDOWN_TIMEOUT + 10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        self._loop = self._runner = self._thread = None
        self._port = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "stopped"
        return f"FakeUpstream({self.provider!r}, {where})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a deterministic fake LLM provider API in the foreground.")
    parser.add_argument("--provider", choices=PROVIDERS, default="openai")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between streamed deltas")
    parser.add_argument("--record", action="store_true", help="keep a log of requests (grows without bound)")
    parser.add_argument("--compress", action="store_true", help="compress non-streamed bodies the client accepts")
    args = parser.parse_args(argv)
    state = FakeState(chunk_delay=args.chunk_delay, record=args.record, compress=args.compress)
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    print(f"fake {args.provider} upstream on http://{args.host}:{args.port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        web.run_app(
            build_app(args.provider, state),
            host=args.host,
            port=args.port,
            access_log=None,
            print=None,
            loop=loop,
            handler_cancellation=True,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
        )


if __name__ == "__main__":
    main()
