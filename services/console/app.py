"""The console: read API, admin API and logs viewer, behind the admin token when one is set."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from services.console.access import allowed

_PROTECTED = ("/api/", "/logs", "/profiles")


class AdminGate:
    """Refuses the read side to anyone without the admin token (or, with no token set, to anyone not local)."""

    def __init__(self, app: ASGIApp, token: SecretStr | None, protected: tuple[str, ...] = _PROTECTED) -> None:
        self.app = app
        self.token = token
        self.protected = protected

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.protected):
            request = Request(scope)
            client = scope.get("client")
            if not allowed(
                self.token,
                request.headers.get("authorization"),
                request.cookies.get("warden_token"),
                client[0] if client else None,
            ):
                message = (
                    "a valid admin token is required (Authorization: Bearer <token>)"
                    if self.token
                    else "the read side answers only on this machine unless WARDEN_ADMIN_TOKEN is set"
                )
                status = 401 if self.token else 403
                response = JSONResponse(
                    {"error": {"message": message, "type": "authentication_error"}},
                    status_code=status,
                    headers={"WWW-Authenticate": "Bearer"} if self.token else None,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def metrics_route(registry: CollectorRegistry) -> Route:
    async def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Route("/metrics", metrics, methods=["GET"])


async def _health(_: Request) -> Response:
    return PlainTextResponse("ok")


def console_app(
    routes: list[BaseRoute], registry: CollectorRegistry, token: SecretStr | None, protect_metrics: bool = False
) -> ASGIApp:
    """``protect_metrics``: ``/metrics`` needs the admin token too (label values come from clients' requests)."""
    app = Starlette(routes=[*routes, metrics_route(registry), Route("/healthz", _health)])
    return AdminGate(app, token, (*_PROTECTED, "/metrics") if protect_metrics else _PROTECTED)
