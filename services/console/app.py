"""The console: read API, admin API and logs viewer, behind the access rules of ``access``."""

from __future__ import annotations

import math

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from schemas.errors import error_json
from services.console.access import STATE_CHANGING, Access, Verdict, json_body_problem, origin_problem

_PROTECTED = ("/api/", "/logs", "/profiles")
_FORMS = ("/login", "/logout")
"""The viewer's own forms: not behind the gate (they are how one gets in and out), but they change state."""

_REFUSALS = {
    Verdict.NOT_LOCAL: (403, "the read side answers only on this machine unless WARDEN_ADMIN_TOKEN is set"),
    Verdict.FOREIGN_HOST: (
        403,
        "without WARDEN_ADMIN_TOKEN the read side answers only under a loopback host name "
        "(127.0.0.1, localhost, [::1], or one listed in WARDEN_ALLOWED_HOSTS)",
    ),
    Verdict.NO_CREDENTIAL: (401, "a valid admin token is required (Authorization: Bearer <token>)"),
    Verdict.WRONG_TOKEN: (401, "a valid admin token is required (Authorization: Bearer <token>)"),
    Verdict.THROTTLED: (429, "too many failed admin-token attempts from this address; try again later"),
}


def _error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_json(message, kind), status_code=status, headers=headers)


def refusal(verdict: Verdict, retry_after_s: float) -> JSONResponse:
    status, message = _REFUSALS[verdict]
    if status == 401:
        return _error(status, message, "authentication_error", {"WWW-Authenticate": "Bearer"})
    if status == 429:
        return _error(status, message, "rate_limit_error", {"Retry-After": str(math.ceil(retry_after_s))})
    return _error(status, message, "permission_error")


class AdminGate:
    """In front of the whole console: refuses what ``access`` refuses. State-changing requests are checked for their
    origin first, then who asks, then (on the admin API) that the body is JSON."""

    def __init__(self, app: ASGIApp, access: Access, protected: tuple[str, ...] = _PROTECTED) -> None:
        self.app = app
        self.access = access
        self.protected = protected

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = self._refuse(scope) if scope["type"] == "http" else None
        if response is not None:
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refuse(self, scope: Scope) -> Response | None:
        path, method = scope["path"], scope["method"]
        protected = path.startswith(self.protected)
        if not protected and path not in _FORMS:
            return None
        headers = Headers(scope=scope)
        if method in STATE_CHANGING:
            problem = origin_problem(
                headers.get("origin"),
                headers.get("sec-fetch-site"),
                headers.get("host"),
                self.access.rides_on_cookie(scope),
            )
            if problem is not None:
                return _error(403, problem, "permission_error")
        if not protected:
            return None
        decision = self.access.decide(scope)
        if not decision.allowed:
            return refusal(decision.verdict, decision.retry_after_s)
        if path.startswith("/api/"):
            problem = json_body_problem(method, headers)
            if problem is not None:
                return _error(415, problem, "invalid_request_error")
        return None


def metrics_route(registry: CollectorRegistry) -> Route:
    async def metrics(_: Request) -> Response:
        # Off the event loop: a registry may wait for other processes' figures (a proxy worker's siblings), and the
        # requests this process serves meanwhile must not wait with it. prometheus_client's metrics are thread-safe.
        return Response(await run_in_threadpool(generate_latest, registry), media_type=CONTENT_TYPE_LATEST)

    return Route("/metrics", metrics, methods=["GET"])


async def _health(_: Request) -> Response:
    return PlainTextResponse("ok")


def console_app(
    routes: list[BaseRoute], registry: CollectorRegistry, access: Access, protect_metrics: bool = False
) -> ASGIApp:
    """``protect_metrics``: ``/metrics`` needs the admin token too (label values come from clients' requests)."""
    app = Starlette(routes=[*routes, metrics_route(registry), Route("/healthz", _health)])
    return AdminGate(app, access, (*_PROTECTED, "/metrics") if protect_metrics else _PROTECTED)
