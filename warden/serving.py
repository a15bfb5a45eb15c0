"""How a Warden process runs once its services are built: the HTTP server, the signals, and the order of a stop.

Every long-running command (``warden serve`` and each distributed role) goes through ``run``: start, say what is
running, wait for the server or for Ctrl-C / SIGTERM, then stop what was started, in reverse order, to the end."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Awaitable, Callable, Generator
from typing import Protocol

import uvicorn
from starlette.types import ASGIApp

from plumbing.http_limits import HttpLimits, protocol_class
from plumbing.settings import CommonSettings

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def on_stop_signals(callback: Callable[[signal.Signals], object]) -> Generator[None, None, None]:
    """``callback`` on Ctrl-C or SIGTERM while inside: the process then stops in its own order (the default handling
    would end it before its events are drained)."""
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, callback, sig)
    try:
        yield
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)


async def until_stopped() -> None:
    """For the services that are not HTTP servers (logger, guard): wait for Ctrl-C or SIGTERM."""
    stopped = asyncio.Event()
    with on_stop_signals(lambda _: stopped.set()):
        await stopped.wait()


class Server(uvicorn.Server):
    """uvicorn's server, with SIGINT/SIGTERM handled here: they stop the server, then Warden drains its events
    (uvicorn's own handling re-raises the signal, which would end the process before the drain). ``signals=False``:
    the server runs beside something else that handles them (a role's metrics server, a test runner)."""

    def __init__(self, config: uvicorn.Config, *, signals: bool = True) -> None:
        super().__init__(config)
        self._signals = signals

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if not self._signals:
            yield
            return
        with on_stop_signals(lambda sig: self.handle_exit(sig, None)):
            yield


def uvicorn_config(app: ASGIApp, host: str, port: int, settings: CommonSettings) -> uvicorn.Config:
    limits = HttpLimits(settings.max_header_bytes, settings.max_header_count, settings.header_timeout_s)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=protocol_class(limits),  # httptools, with bounded headers and header time
        lifespan="off",
        access_log=False,
        log_config=None,
        server_header=False,
        proxy_headers=False,
        date_header=False,
        timeout_graceful_shutdown=30,
    )


def http_server(
    app: ASGIApp, listener: socket.socket, host: str, port: int, settings: CommonSettings
) -> Callable[[], Awaitable[None]]:
    """The ``wait`` of an HTTP service: serve ``app`` on the socket bound at start (``startup.bind``) until stopped."""
    server = Server(uvicorn_config(app, host, port, settings))
    return lambda: server.serve(sockets=[listener])


class Startable(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def run(
    services: Startable,
    wait: Callable[[], Awaitable[None]],
    *,
    started: Callable[[], None],
    stopping: Callable[[], None] | None = None,
    stopped: str,
) -> None:
    """Start ``services``, call ``started`` (what is now listening), ``wait`` (the server, or the stop signal), then
    stop them: shielded, so what was accepted is drained even if the waiting was cancelled."""
    await services.start()
    started()
    try:
        await wait()
    finally:
        if stopping is not None:
            stopping()
        await asyncio.shield(services.stop())
        print(stopped, flush=True)
