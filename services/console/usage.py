"""``GET /api/usage``: tokens, requests, errors and cost per group and time bucket, for analysts and the usage page.

Answered from the rollups of migration 006, which the store fills on every insert into the record: one row per
(attribution column, value, hour) in ``warden.usage_hourly``, per day in ``warden.usage_daily``, so a question reads
rows per group and bucket however many interactions there were. Buckets of an hour read the hourly rollup, longer
ones the daily one. The rollup's grain bounds the range: ``since`` is taken back to the start of its hour (day) and
``until`` on to the end of its own, and the answer says the range it covers.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from plumbing.store.base import Store
from schemas.errors import error_json
from services.console.api import parse_time
from services.console.queries import InvalidQuery, iso_utc

GroupBy = Literal["agent_id", "user_id", "model", "profile_id", "provider", "key"]
GROUP_BY: tuple[str, ...] = ("agent_id", "user_id", "model", "profile_id", "provider", "key")
"""``key``: the Warden key's prefix the record keeps (a rotated key's new secret has a prefix of its own)."""
INTERVALS = {
    "hour": "{at}",
    "day": "{at}",
    "week": "toDateTime(toMonday({at}), 'UTC')",
    "month": "toDateTime(toStartOfMonth({at}), 'UTC')",
}
"""A bucket's start from the rollup's time column (its hour, or its day for the longer buckets)."""
_HOURS = {"hour": 1, "day": 24, "week": 24 * 7, "month": 24 * 31}
MAX_BUCKETS = 2000
"""Buckets per group in one answer (``interval`` too fine for the range beyond it is a 400)."""
DEFAULT_GROUPS, MAX_GROUPS = 20, 500
DEFAULT_RANGE = timedelta(days=7)
MEASURES = (
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "unpriced",
    "estimated",
)
"""What each bucket counts. ``unpriced``: answers that reported tokens but whose model has no price (their cost is
not in ``cost_usd``); ``estimated``: answers whose tokens Warden counted (a stream that reported none)."""


def _floor(t: datetime, grain: timedelta) -> datetime:
    floor = t.replace(minute=0, second=0, microsecond=0)
    return floor.replace(hour=0) if grain == _DAY else floor


def _ceil(t: datetime, grain: timedelta) -> datetime:
    floor = _floor(t, grain)
    return floor if floor == t else floor + grain


_HOUR, _DAY = timedelta(hours=1), timedelta(days=1)


class UsageQuery:
    """A validated ``/api/usage`` question."""

    def __init__(self, params: dict[str, str], now: datetime | None = None) -> None:
        group_by = params.get("group_by", "")
        if group_by not in GROUP_BY:
            raise InvalidQuery(f"group_by must be one of {', '.join(GROUP_BY)}")
        self.group_by = group_by
        until = parse_time("until", params.get("until") or None) or (now or datetime.now(UTC))
        since = parse_time("since", params.get("since") or None) or until - DEFAULT_RANGE
        if until <= since:
            raise InvalidQuery("since must be before until")
        hours = (until - since) / _HOUR
        interval = params.get("interval") or ("hour" if hours <= 48 else "day" if hours <= 24 * 92 else "week")
        if interval not in INTERVALS:
            raise InvalidQuery(f"interval must be one of {', '.join(INTERVALS)}")
        if math.ceil(hours / _HOURS[interval]) > MAX_BUCKETS:
            raise InvalidQuery(f"more than {MAX_BUCKETS} {interval}s between since and until: choose a longer interval")
        self.interval = interval
        grain = _HOUR if interval == "hour" else _DAY
        self.table, self.time_column = (
            ("warden.usage_hourly", "hour") if grain == _HOUR else ("warden.usage_daily", "day")
        )
        self.since, self.until = _floor(since, grain), _ceil(until, grain)
        groups = params.get("limit", str(DEFAULT_GROUPS))
        if not groups.isdigit() or not 1 <= int(groups) <= MAX_GROUPS:
            raise InvalidQuery(f"limit must be a number of groups from 1 to {MAX_GROUPS}")
        self.groups = int(groups)

    def sql(self) -> tuple[str, dict[str, Any]]:
        """The buckets of the groups that cost most over the range (then the busiest), in one statement."""
        at, table = self.time_column, self.table
        where = (
            f"dimension = {{dimension:String}} AND {at} >= {{since:DateTime('UTC')}} "
            f"AND {at} < {{until:DateTime('UTC')}}"
        )
        sums = ", ".join(f"sum({m}) AS {m}" for m in MEASURES)
        bucket = INTERVALS[self.interval].format(at=at)
        sql = (
            f"SELECT value, {bucket} AS bucket, {sums} FROM {table} "
            f"WHERE {where} AND value IN (SELECT value FROM {table} WHERE {where} GROUP BY value "
            "ORDER BY sum(cost_usd) DESC, sum(requests) DESC, value LIMIT {groups:UInt32}) "
            "GROUP BY value, bucket ORDER BY value, bucket"
        )
        stamp = "%Y-%m-%d %H:%M:%S"
        params = {
            "dimension": self.group_by,
            "since": self.since.strftime(stamp),
            "until": self.until.strftime(stamp),
            "groups": self.groups,
        }
        return sql, params

    def answer(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        groups: dict[str, dict[str, Any]] = {}
        for row in rows:
            group = groups.setdefault(
                row["value"], {"group": row["value"], "totals": dict.fromkeys(MEASURES, 0), "buckets": []}
            )
            bucket = {"start": iso_utc(str(row["bucket"]))} | {m: _number(row[m]) for m in MEASURES}
            group["buckets"].append(bucket)
            for m in MEASURES:
                group["totals"][m] += bucket[m]
        ordered = sorted(
            groups.values(), key=lambda g: (-g["totals"]["cost_usd"], -g["totals"]["requests"], g["group"])
        )
        return {
            "group_by": self.group_by,
            "interval": self.interval,
            "since": self.since.isoformat().replace("+00:00", "Z"),
            "until": self.until.isoformat().replace("+00:00", "Z"),
            "groups": ordered,
        }


def _number(value: Any) -> int | float:
    if isinstance(value, str):  # 64-bit integers arrive as strings in JSON formats
        return float(value) if "." in value or "e" in value else int(value)
    return value


class UsageApi:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def usage(self, params: dict[str, str]) -> dict[str, Any]:
        query = UsageQuery(params)
        return query.answer(await self.store.select(*query.sql()))

    async def endpoint(self, request: Request) -> Response:
        try:
            return JSONResponse(await self.usage(dict(request.query_params)))
        except InvalidQuery as exc:
            return JSONResponse(error_json(str(exc), "invalid_request_error"), status_code=400)

    def routes(self) -> list[Route]:
        return [Route("/api/usage", self.endpoint, methods=["GET"])]
