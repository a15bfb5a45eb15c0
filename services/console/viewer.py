"""The logs viewer: server-rendered pages over the read API (``/logs``, ``/logs/{id}``, ``/profiles``, ``/login``).

Pages are Jinja2 templates with autoescaping on: every recorded value (prompts, answers, ids) is data, rendered as
text, never markup. The only scripts are the files under ``static/`` (live refresh, copy buttons, the profiles
editor); a Content-Security-Policy forbids any other script, so even a rendering mistake could not run a prompt's
``<script>``. The JavaScript builds elements with ``textContent``, never ``innerHTML``.
"""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import jinja2
import orjson
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from plumbing.store.base import Store
from providers.common import without_surrogates
from schemas.events import SEVERITIES, SEVERITY_RANK
from schemas.view import CompletionView
from services.console.access import SESSION_COOKIE, Access, Verdict, bearer
from services.console.api import InteractionsApi, parse_filter
from services.console.queries import InvalidQuery
from services.console.transcript import pretty, read_answer, read_request
from services.console.usage import GROUP_BY, INTERVALS, UsageQuery, usage_rows

HERE = Path(__file__).resolve().parent
SEEN_LIMIT = 200
SEEN_TTL_S = 30.0
"""The filter suggestions are recomputed at most this often."""
SEEN_DAYS = 7
"""Suggestions are the values seen in this many recent days: ids not seen for a week are rarely the ones looked for
(typing still works)."""
RAW_DISPLAY_CHARS = 256 * 1024
"""Raw bodies longer than this are cut in the page (the API has them whole): a browser chokes on megabytes of text."""
PART_DISPLAY_CHARS = 100_000
"""Likewise for one piece of the conversation or the answer (a text, a tool call's arguments, a tool result)."""

FILTERS = (
    "profile_id",
    "agent_id",
    "user_id",
    "session_id",
    "provider",
    "model",
    "status",
    "blocked",
    "min_severity",
    "violation_category",
    "since",
    "until",
    "limit",
    "cursor",
)
STATUS_CHOICES = ("2xx", "4xx", "5xx", "error", "in_flight")
_SEEN_COLUMNS = ("agent_id", "user_id", "profile_id", "provider", "model")
_PAGES = ("/logs", "/profiles", "/usage")
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def seen_values_sql(column: str) -> str:
    """The most recently seen distinct values of a column, newest first: the filter form's suggestions.

    From ``warden.seen_values`` (migration 004): one row per value once merged, so this groups thousands of rows, not
    a week of interactions. Grouped here too: rows of parts not merged yet repeat a value.
    """
    if column not in _SEEN_COLUMNS:
        raise ValueError(f"not a column with suggestions: {column}")
    # On the rows, not the groups: a value last seen in the window has a row in it, and older rows are skipped
    # before they are grouped.
    return (
        f"SELECT value, max(last_seen) AS last FROM warden.seen_values WHERE attribute = '{column}' "
        f"AND last_seen >= now64(6) - INTERVAL {SEEN_DAYS} DAY GROUP BY value ORDER BY last DESC LIMIT {SEEN_LIMIT}"
    )


def flags_sql(ids: list[str]) -> tuple[str, dict[str, Any]]:
    """Violation counts and worst severity of the interactions on one page (a primary-key lookup per id)."""
    params = {f"id{n}": interaction_id for n, interaction_id in enumerate(ids)}
    placeholders = ", ".join(f"{{id{n}:UUID}}" for n in range(len(ids)))
    sql = (
        "SELECT toString(interaction_id) AS id, uniqExact(violation_id) AS violations, "
        f"max(severity_rank) AS worst FROM warden.violations WHERE interaction_id IN ({placeholders}) "
        "GROUP BY interaction_id"
    )
    return sql, params


def logs_url(params: dict[str, Any] | None = None, **more: Any) -> str:
    merged = {k: v for k, v in {**(params or {}), **more}.items() if v not in (None, "")}
    return "/logs" + ("?" + urlencode(merged) if merged else "")


def form_time(value: str | None) -> str:
    """A time filter as a ``datetime-local`` input shows it (UTC, no zone suffix); unreadable values as typed."""
    if not value:
        return ""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC)
    # The input holds milliseconds at most; finer times are shown cut (the address keeps them whole).
    return parsed.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] if parsed.microsecond else parsed.strftime("%Y-%m-%dT%H:%M:%S")


def safe_next(target: str | None) -> str:
    """Only a path on this server: ``//evil.example`` and absolute URLs are not places to send someone after login."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/logs"
    return target


_SEVERITY_NAMES = {rank: name for name, rank in SEVERITY_RANK.items()}


def clip(text: str, where: str = "request") -> str:
    """One piece cut to ``PART_DISPLAY_CHARS`` for the page, saying where it is whole."""
    if len(text) <= PART_DISPLAY_CHARS:
        return text
    cut = len(text) - PART_DISPLAY_CHARS
    return text[:PART_DISPLAY_CHARS] + f"\n… {cut:,} more characters (see the raw {where})"


def arguments(value: Any, where: str = "request") -> str:
    """A tool call's arguments for display: indented JSON, or the text as sent when it is not JSON."""
    return "" if value is None or value == "" else clip(pretty(value), where)


def usd(value: float | None) -> str:
    """A cost for display: unknown as a dash (never $0), small amounts with the digits that matter."""
    if value is None:
        return "—"
    if value == 0:
        return "$0"
    return f"${value:,.2f}" if value >= 1 else f"${value:.6f}".rstrip("0")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.globals.update(logs_url=logs_url, form_time=form_time)
    env.filters.update(
        pretty=pretty,
        clip=clip,
        arguments=arguments,
        when=lambda value: (value or "")[:19].replace("T", " "),
        ms=lambda value: "—" if value is None else f"{value:,.0f} ms",
        count=lambda value: "—" if value is None else f"{value:,}",
        usd=usd,
        severity=lambda rank: _SEVERITY_NAMES.get(rank, str(rank)),
    )
    return env


class Viewer:
    def __init__(self, api: InteractionsApi, access: Access) -> None:
        self.api = api
        self.store: Store = api.store
        self.access = access
        self.token = access.token
        self.templates = _environment()
        self._seen: dict[str, list[str]] = {}
        self._seen_at = float("-inf")
        self._seen_lock = asyncio.Lock()

    # -- composition ---------------------------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/logs", self.logs, methods=["GET"]),
            Route("/logs/{interaction_id}", self.detail, methods=["GET"]),
            Route("/profiles", self.profiles, methods=["GET"]),
            Route("/usage", self.usage_page, methods=["GET"]),
            Route("/login", self.login, methods=["GET", "POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
        ]

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """Put the login redirect in front of the console (which the admin gate already guards)."""
        return LoginRedirect(app, self.access)

    # -- rendering -----------------------------------------------------------------------------------------------

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("logged_in", self.token is not None)
        html = self.templates.get_template(template).render(**context)
        if not html.isascii():
            try:
                html.encode()
            except UnicodeEncodeError:  # a lone surrogate read from a JSON escape: shown as that escape
                html = without_surrogates(html)
        return HTMLResponse(html, status_code=status, headers=_SECURITY_HEADERS)

    # -- /logs ---------------------------------------------------------------------------------------------------

    async def logs(self, request: Request) -> Response:
        filters = {k: v.strip() for k, v in request.query_params.items() if k in FILTERS and v.strip()}
        fragment = request.query_params.get("fragment") == "rows"
        live = request.query_params.get("live") == "1"
        error, items, next_cursor = None, [], None
        try:
            page = await self.api.page(parse_filter(filters))
            items, next_cursor = page["items"], page["next_cursor"]
        except InvalidQuery as exc:
            error = str(exc)
        await self._add_flags(items)
        shared = {k: v for k, v in filters.items() if k != "cursor"}
        context = {
            "items": items,
            "error": error,
            "older_url": logs_url(shared, cursor=next_cursor, live="1" if live else None) if next_cursor else None,
            "newest_url": logs_url(shared, live="1" if live else None) if "cursor" in filters else None,
        }
        status = 400 if error else 200
        if fragment:
            return self.render("logs_rows.html", status, **context)
        return self.render(
            "logs.html",
            status,
            **context,
            filters=filters,
            live=live,
            seen=await self.seen(),
            status_choices=STATUS_CHOICES,
            severities=list(SEVERITIES),
        )

    async def _add_flags(self, items: list[dict[str, Any]]) -> None:
        for item in items:
            item["violations"], item["worst"] = 0, None
        if not items:
            return
        sql, params = flags_sql([item["interaction_id"] for item in items])
        found = {row["id"]: row for row in await self.store.select(sql, params)}
        for item in items:
            row = found.get(item["interaction_id"])
            if row:
                item["violations"], item["worst"] = row["violations"], _SEVERITY_NAMES.get(row["worst"])

    async def seen(self) -> dict[str, list[str]]:
        """Recently seen values for the filter suggestions, recomputed at most every ``SEEN_TTL_S`` seconds."""
        async with self._seen_lock:
            if time.monotonic() - self._seen_at > SEEN_TTL_S:
                self._seen = {
                    column: [row["value"] for row in await self.store.select(seen_values_sql(column))]
                    for column in _SEEN_COLUMNS
                }
                self._seen_at = time.monotonic()
            return self._seen

    # -- /logs/{id} ----------------------------------------------------------------------------------------------

    async def detail(self, request: Request) -> Response:
        interaction_id = request.path_params["interaction_id"]
        try:
            item = await self.api.detail(interaction_id)
        except InvalidQuery as exc:
            return self.render("message.html", 400, title="Not an interaction", message=str(exc))
        if item is None:
            return self.render("message.html", 404, title="Not found", message="No interaction has this id.")
        # Bodies can be megabytes: reading and rendering them happens off the event loop, which in the embedded
        # default also carries the proxy's traffic.
        return await asyncio.to_thread(self._render_detail, item)

    def _render_detail(self, item: dict[str, Any]) -> HTMLResponse:
        received = item.get("request_received")
        sent = item.get("request_sent")
        conversation = read_request(item)
        answer = read_answer(item)
        blocked_ids = {call.get("id") for call in item.get("blocked_tool_calls") or [] if isinstance(call, dict)}
        return self.render(
            "detail.html",
            item=item,
            conversation=conversation,
            answer=answer,
            answer_calls=_answer_calls(answer, item),
            blocked_ids=blocked_ids,
            decisions=[*(item.get("request_decisions") or []), *(item.get("response_decisions") or [])],
            raw_received=_cut(pretty(received) if received else ""),
            raw_sent=_cut(pretty(sent)) if sent and sent != received else None,
            raw_response=_cut(pretty(item.get("response_body") or "")),
        )

    # -- /profiles -----------------------------------------------------------------------------------------------

    async def profiles(self, _: Request) -> Response:
        return self.render("profiles.html")

    # -- /usage --------------------------------------------------------------------------------------------------

    async def usage_page(self, request: Request) -> Response:
        params = {k: v.strip() for k, v in request.query_params.items() if v.strip()}
        params.setdefault("group_by", "agent_id")
        error, answer, query = None, None, None
        try:
            query = UsageQuery(params)
            answer = query.answer(await usage_rows(self.store, query))
        except InvalidQuery as exc:
            error = str(exc)
        return self.render(
            "usage.html",
            status=400 if error else 200,
            error=error,
            usage=answer,
            usage_json=orjson.dumps(answer).decode().replace("<", "\\u003c") if answer else "",
            query={
                "group_by": params["group_by"],
                "since": query.since.isoformat() if query else params.get("since"),
                "until": query.until.isoformat() if query else params.get("until"),
                "interval": query.interval if query else params.get("interval"),
            },
            group_choices=GROUP_BY,
            interval_choices=tuple(INTERVALS),
        )

    # -- /login, /logout -----------------------------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        target = safe_next(request.query_params.get("next"))
        if self.token is None or self.access.sessions is None:
            return RedirectResponse(target, status_code=303)
        if request.method == "GET":
            return self.render("login.html", next=target, error=None, logged_in=False)
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        offered = (form.get("token") or [""])[0]
        target = safe_next((form.get("next") or [target])[0])
        decision = self.access.try_token(request.scope, offered)
        if decision.verdict is Verdict.THROTTLED:
            wait = math.ceil(decision.retry_after_s)
            error = f"Too many failed attempts: try again in {wait} s."
            page = self.render("login.html", 429, next=target, error=error, logged_in=False)
            page.headers["Retry-After"] = str(wait)
            return page
        if not decision.allowed:
            return self.render("login.html", 401, next=target, error="That is not the admin token.", logged_in=False)
        # The cookie holds a session, never the token: it expires, a logout ends it, and it cannot be replayed as a
        # bearer token.
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            self.access.sessions.issue(time.time()),
            max_age=int(self.access.sessions.ttl_s),
            httponly=True,
            samesite="strict",
            secure=self.access.over_tls(request.scope),
            path="/",
        )
        return response

    async def logout(self, request: Request) -> Response:
        if self.access.sessions is not None:
            await self.access.sessions.revoke(request.cookies.get(SESSION_COOKIE), time.time())
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(
            SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=self.access.over_tls(request.scope)
        )
        return response


def _cut(text: str) -> dict[str, Any]:
    return {"text": text[:RAW_DISPLAY_CHARS], "cut": max(len(text) - RAW_DISPLAY_CHARS, 0)}


def _answer_calls(answer: CompletionView | None, item: dict[str, Any]) -> list[dict[str, Any]]:
    """The answer's tool calls: as recorded in the common view when the recorder saw them, else as read here."""
    recorded = [c for c in item.get("tool_calls") or [] if isinstance(c, dict)]
    calls = recorded or ([call.model_dump() for call in answer.tool_calls] if answer is not None else [])
    return [
        {"id": c.get("id"), "name": c.get("name"), "arguments": arguments(c.get("arguments"), "response")}
        for c in calls
    ]


class LoginRedirect:
    """With an admin token set, a browser asking for a page without a session is sent to the login form instead of
    the gate's 401 (the API keeps answering 401 JSON: scripts want a status, not a form). A request with a bearer
    header goes on to the gate, which checks (and throttles) it."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.access.token is not None
            and scope["type"] == "http"
            and _is_page(scope)
            and bearer(Headers(scope=scope).get("authorization")) is None
            and self.access.session(scope) is None
        ):
            request = Request(scope)
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            response = RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _is_page(scope: Scope) -> bool:
    path = scope["path"]
    if scope["method"] not in ("GET", "HEAD") or b"fragment=" in scope.get("query_string", b""):
        return False
    return any(path == page or path.startswith(page + "/") for page in _PAGES)
