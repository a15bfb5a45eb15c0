"""Runs an embedded Warden (ingress, logger, console over the in-process bus and chDB) in a background thread on a
free loopback port, the way ``warden serve`` runs it, for tests to talk to over real HTTP."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from warden.embedded import Embedded, ServeSettings
from warden.serving import Server, uvicorn_config


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WardenServer:
    def __init__(self, data_dir: Path, **settings: Any) -> None:
        self.port = free_port()
        self.settings = ServeSettings(host="127.0.0.1", port=self.port, data_dir=data_dir, **settings)
        self.url = f"http://127.0.0.1:{self.port}"
        self.embedded: Embedded | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> WardenServer:
        self._thread = threading.Thread(target=self._run, name="warden", daemon=True)
        self._thread.start()
        if not self._ready.wait(60):
            raise RuntimeError("warden did not start within 60 s")
        if self._error is not None:
            raise RuntimeError("warden failed to start") from self._error
        return self

    def _run(self) -> None:
        import uvloop

        self._loop = uvloop.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self.embedded = Embedded.build(self.settings)
        await self.embedded.start()
        config = uvicorn_config(self.embedded.app, "127.0.0.1", self.port, self.settings)
        self._server = Server(config, signals=False)  # signals belong to the test runner
        serving = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if serving.done():
                await serving
            await asyncio.sleep(0.01)
        self._ready.set()
        try:
            await serving
        finally:
            await self.embedded.stop()

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(60)

    def call(self, fn: Callable[[Embedded], Any]) -> Any:
        """Run ``fn(embedded)`` (a coroutine function) on Warden's loop and return its result."""
        assert self._loop is not None and self.embedded is not None
        return asyncio.run_coroutine_threadsafe(fn(self.embedded), self._loop).result(30)

    # -- read side -----------------------------------------------------------------------------------------------

    def interactions(self, **params: Any) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/api/interactions", params=params, timeout=10)
        response.raise_for_status()
        return response.json()

    def wait_for(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = 30.0,
        count: int = 1,
        **params: Any,
    ) -> list[dict[str, Any]]:
        """Poll the interactions API until at least ``count`` items satisfy ``predicate``; return the matching items.
        The bound is generous: on a busy machine an answer that needs its tokens counted (the tokenizer loads on first
        use) or crosses to the background process can take seconds to be stored."""
        deadline = time.monotonic() + timeout
        while True:
            items = [item for item in self.interactions(**params)["items"] if predicate(item)]
            if len(items) >= count:
                return items
            if time.monotonic() > deadline:
                raise AssertionError(f"no interaction matched within {timeout} s for {params}")
            time.sleep(0.05)

    def detail(self, interaction_id: str) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/api/interactions/{interaction_id}", timeout=10)
        response.raise_for_status()
        return response.json()

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=10).text
