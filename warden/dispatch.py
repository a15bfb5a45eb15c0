"""One ASGI app in front of the ingress and the console: provider traffic goes straight to the ingress.

Each answers refused requests itself: the ingress in the provider's shape (and records them), the console as built
by ``warden.composition`` (a JSON error)."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class Dispatch:
    def __init__(self, ingress: ASGIApp, console: ASGIApp) -> None:
        self.ingress = ingress
        self.console = console

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            await self.ingress(scope, receive, send)
        elif scope["type"] == "lifespan":
            await _lifespan(receive, send)
        else:
            await self.console(scope, receive, send)


async def _lifespan(receive: Receive, send: Send) -> None:
    """Start-up and shut-down are driven by the runner around the server, not through ASGI lifespan."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
