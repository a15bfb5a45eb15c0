"""The access log: one JSON line per proxied request (method, path, status, duration, interaction id), when
``WARDEN_ACCESS_LOG`` is on.

It wraps the ingress as ASGI middleware, so the status is the one the client received and the duration runs until
the last byte of the answer was handed to the server. Off, it is not in the request's path at all. The path is the
ASGI path, which never carries the query string (where Gemini clients may put ``?key=``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from services.ingress.asgi import Message, Receive, Scope, Send
from services.ingress.headers import INTERACTION_ID_HEADER

log = logging.getLogger("warden.access")

App = Callable[[Scope, Receive, Send], Awaitable[None]]


def with_access_log(app: App, enabled: bool) -> App:
    """``app`` with the access log around it when ``enabled``, else ``app`` itself: off costs nothing."""
    return AccessLog(app) if enabled else app


class AccessLog:
    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 0
        interaction_id = ""

        async def send_noted(message: Message) -> None:
            nonlocal status, interaction_id
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers") or ():
                    if name == INTERACTION_ID_HEADER:
                        interaction_id = value.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, send_noted)
        except BaseException:
            status = status or 500  # the server answers 500 for an exception before the response started
            raise
        finally:
            if log.isEnabledFor(logging.INFO):
                _write(scope, status, interaction_id, time.perf_counter() - started)


def _write(scope: Scope, status: int, interaction_id: str, duration_s: float) -> None:
    method, path = scope.get("method", ""), scope.get("path", "")
    fields = {
        "method": method,
        "path": path,
        "status": status or None,
        "duration_ms": round(duration_s * 1000, 3),
        "interaction_id": interaction_id or None,
    }
    # A record made here rather than through ``log.info``, which would walk the stack to find its caller: about a
    # third of the cost of a line, and the caller is always this function.
    record = log.makeRecord(
        log.name, logging.INFO, __file__, 0, "%s %s %s", (method, path, status or "-"), None, extra={"fields": fields}
    )
    log.handle(record)
