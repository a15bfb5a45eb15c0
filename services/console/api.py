"""The read API: ``/api/interactions`` and ``/api/interactions/{id}`` (DESIGN §6)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from plumbing.store.base import Store
from schemas.errors import error_json
from services.console import queries
from services.console.queries import InteractionFilter, InvalidQuery

_BOOL = {"true": True, "1": True, "false": False, "0": False}


def parse_time(name: str, value: str | None) -> datetime | None:
    """A query parameter's ISO 8601 time in UTC (one without a zone is taken as UTC); None when absent."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidQuery(f"{name} must be an ISO 8601 time") from exc
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_filter(params: dict[str, str]) -> InteractionFilter:
    blocked = params.get("blocked")
    if blocked is not None and blocked not in _BOOL:
        raise InvalidQuery("blocked must be true or false")
    limit = params.get("limit", "50")
    if not limit.isdigit():
        raise InvalidQuery("limit must be a number")
    return InteractionFilter(
        agent_id=params.get("agent_id"),
        user_id=params.get("user_id"),
        session_id=params.get("session_id"),
        profile_id=params.get("profile_id"),
        provider=params.get("provider"),
        model=params.get("model"),
        status=params.get("status"),
        blocked=None if blocked is None else _BOOL[blocked],
        violation_category=params.get("violation_category"),
        min_severity=params.get("min_severity"),
        since=parse_time("since", params.get("since")),
        until=parse_time("until", params.get("until")),
        limit=int(limit),
        cursor=params.get("cursor") or None,
    )


def _bad(message: str) -> JSONResponse:
    return JSONResponse(error_json(message, "invalid_request_error"), status_code=400)


class InteractionsApi:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def page(self, f: InteractionFilter) -> dict:
        """One page, newest first, read in rounds (see ``queries``); it looks for one interaction more than the page
        to know whether another page follows."""
        plan = queries.plan_list(f)
        if plan.table == queries.BY_TIME and plan.after is None and f.until is None:
            # The newest of everything: its windows end at the newest interaction stored, not now.
            (newest,) = await self.store.select(queries.NEWEST_START)
            plan = queries.anchored(plan, newest["newest"])
        rows: list[dict] = []
        after, count, window = plan.after, plan.first_round, 0
        while True:
            floor = plan.floor(window)
            answer = await self.store.select(*queries.list_round(plan, after, count, floor))
            if plan.by_outcome:
                keys = queries.fold_keys(answer, plan.limit + 1 - len(rows))
                folded = await self.store.select(*queries.outcome_fold(plan, keys)) if keys else []
                found = queries.Round.of_outcomes(answer, keys, folded, count, after)
            else:
                found = queries.Round.read(plan, answer, count, after)
            rows += found.rows
            if len(rows) > plan.limit:
                break
            if found.exhausted:
                if floor is None:
                    break
                # Nothing more in this window: the next, wider one, from where this one ends.
                after, window = plan.below(floor), window + 1
                continue
            # Short: interactions of several rows each, or some failed a folded condition. Go on after them.
            after, count = found.last, min(count * 4, queries.MAX_ROWS_PER_ROUND)
        more = len(rows) > f.limit
        rows = rows[: f.limit]
        cursor = queries.encode_cursor(rows[-1]["started_at"], rows[-1]["interaction_id"]) if more else None
        return {"items": [queries.present(r) for r in rows], "next_cursor": cursor}

    async def detail(self, interaction_id: str) -> dict | None:
        folded = queries.fold(await self.store.select(*queries.get_interaction(interaction_id)))
        if folded is None:
            return None
        item = queries.present(folded)
        sql, params = queries.violations_of(interaction_id)
        item["violations"] = [queries.present_violation(v) for v in await self.store.select(sql, params)]
        attempts = await self.store.select(*queries.attempts_of(interaction_id))
        item["upstream_attempts"] = orjson.loads(attempts[0]["attempts"]) if attempts else []
        return item

    async def list_endpoint(self, request: Request) -> Response:
        try:
            f = parse_filter(dict(request.query_params))
            return JSONResponse(await self.page(f))
        except InvalidQuery as exc:
            return _bad(str(exc))

    async def detail_endpoint(self, request: Request) -> Response:
        try:
            item = await self.detail(request.path_params["interaction_id"])
        except InvalidQuery as exc:
            return _bad(str(exc))
        if item is None:
            return JSONResponse(error_json("no such interaction", "not_found_error"), status_code=404)
        return JSONResponse(item)

    def routes(self) -> list[Route]:
        return [
            Route("/api/interactions", self.list_endpoint, methods=["GET"]),
            Route("/api/interactions/{interaction_id}", self.detail_endpoint, methods=["GET"]),
        ]
