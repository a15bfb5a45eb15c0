"""``GET /api/usage``: tokens, requests, errors and cost per group and time bucket, for analysts and the usage page.

Answered from the rollups of migrations 006 and 007, which the store fills on every insert into the record: one row
per (attribution column, value, hour) in ``warden.usage_hourly``, per day in ``warden.usage_daily``, so a question
reads rows per group and bucket however many interactions there were. Buckets of an hour read the hourly rollup,
longer ones the daily one. The rollup's grain bounds the range: ``since`` is taken back to the start of its hour (day)
and ``until`` on to the end of its own, and the answer says the range it covers.

Choosing the groups (the ``limit`` that cost most) is what grows with the range: every value of the dimension has to
be ranked, and a busy one (tens of thousands of users) has a row per value and hour (day) of the range. So a range of
more than ``MAX_COVER_BLOCKS`` hours (days) is ranked in steps: each value's spend over the few days, weeks or months
that cover the range (``warden.usage_weekly`` / ``usage_monthly``: a row per value and block) bounds its spend within
the range; the values with the highest bounds are ranked over the range itself, read by value (``*_by_value``: index
ranges per value); and that ranking stands when the highest bound left out is below the spend of the last group kept,
since no value left out can then have spent more. The first round ranks few values (each is an index range to read);
when it cannot decide, the spend of its last group says how many bounds reach it, and a second round ranks those.
Otherwise (spend spread evenly over many values, or most of it outside the range) the range itself is ranked, as one
statement. Either way the answer is the same; the buckets of the chosen groups are read by value.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
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


_HOUR, _DAY, _WEEK = timedelta(hours=1), timedelta(days=1), timedelta(days=7)


@dataclass(frozen=True)
class Grain:
    """A rollup's time grain: its table ordered by (dimension, time, value), so one dimension's range is contiguous
    (what ranking reads), and its time column."""

    name: str
    table: str
    column: str

    def floor(self, t: datetime) -> datetime:
        t = t.replace(minute=0, second=0, microsecond=0)
        if self.name == "hour":
            return t
        t = t.replace(hour=0)
        if self.name == "week":
            return t - timedelta(days=t.weekday())
        return t.replace(day=1) if self.name == "month" else t

    def next(self, t: datetime) -> datetime:
        """The start of the block after the one starting at ``t``."""
        if self.name == "month":
            return (t + timedelta(days=32)).replace(day=1)
        return t + {"hour": _HOUR, "day": _DAY, "week": _WEEK}[self.name]

    def ceil(self, t: datetime) -> datetime:
        floor = self.floor(t)
        return floor if floor == t else self.next(floor)

    def blocks(self, since: datetime, until: datetime) -> int:
        """How many of its blocks cover ``[since, until)``."""
        first, last = self.floor(since), self.ceil(until)
        if self.name == "month":
            return (last.year - first.year) * 12 + last.month - first.month
        return round((last - first) / (self.next(first) - first))


HOUR = Grain("hour", "warden.usage_hourly", "hour")
DAY = Grain("day", "warden.usage_daily", "day")
COVERS = (HOUR, DAY, Grain("week", "warden.usage_weekly", "week"), Grain("month", "warden.usage_monthly", "month"))
"""Finest first: the grains whose blocks can bound a range's spend (migrations 006 and 007)."""
BY_VALUE = {"hour": "warden.usage_hourly_by_value", "day": "warden.usage_daily_by_value"}
"""The same rollups ordered by (dimension, value, time): the buckets of a few values are a few index ranges."""
MAX_COVER_BLOCKS = 3
"""Ranking reads the finest grain whose blocks covering the range are at most this many (a month per day: two
months; a week per day: two weeks; a day per hour: two days): about that many rows per value, however long the range
is."""
EVEN_SHARE = 0.8
"""The first round ranks the values whose bounds reach this fraction of what the ``limit``-th bound would have spent
within the range had it spent evenly over the cover's time (up to now). Each value is an index range to read, so a
round costs in proportion to its values; and a second round costs as much again. At 10 M interactions this took 31 to
64 values for 20 users over 1, 2, 4, 7, 14, 30 and 60 days, where 20 to 59 were needed."""
BOUNDS_PER_GROUP, MIN_BOUNDS = 8, 100
"""Bounds read: ``max(8 * limit, 100)``, what a second round can rank; a range whose groups more bounds than that
could reach is ranked over itself."""
BOUND_MARGIN = 1e-9
EXACT_ROWS = 100_000
"""A dimension whose values in the cover, times the blocks of the range, are at most this many rows is ranked over the
range itself: one statement reading that many rows costs less than bounding first (agents, models, profiles)."""
VALUES_SEEN_FOR_S = 600.0
_values_seen: dict[str, tuple[float, int]] = {}
"""Per dimension (six at most): when its values in a cover were last counted, and how many. What it decides is only
the cheaper of two ways to the same answer, so a count up to ``VALUES_SEEN_FOR_S`` old will do."""


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
        self.grain = HOUR if interval == "hour" else DAY
        self.since, self.until = self.grain.floor(since), self.grain.ceil(until)
        # The coarsest blocks are the fallback for a range longer than a few of them (their count grows with it).
        coarser = COVERS[COVERS.index(self.grain) :]
        self.cover = next((g for g in coarser if g.blocks(self.since, self.until) <= MAX_COVER_BLOCKS), COVERS[-1])
        groups = params.get("limit", str(DEFAULT_GROUPS))
        if not groups.isdigit() or not 1 <= int(groups) <= MAX_GROUPS:
            raise InvalidQuery(f"limit must be a number of groups from 1 to {MAX_GROUPS}")
        self.groups = int(groups)

    def _range(self, at: str) -> str:
        since, until = "{since:DateTime('UTC')}", "{until:DateTime('UTC')}"
        return f"dimension = {{dimension:String}} AND {at} >= {since} AND {at} < {until}"

    def _params(self, since: datetime, until: datetime, **more: Any) -> dict[str, Any]:
        stamp = "%Y-%m-%d %H:%M:%S"
        return {"dimension": self.group_by, "since": since.strftime(stamp), "until": until.strftime(stamp), **more}

    def _buckets(self, chosen: str) -> str:
        """The buckets of the values ``chosen`` selects, read by value."""
        at, table = self.grain.column, BY_VALUE[self.grain.name]
        sums = ", ".join(f"sum({m}) AS {m}" for m in MEASURES)
        return (
            f"SELECT value, {INTERVALS[self.interval].format(at=at)} AS bucket, {sums} FROM {table} "
            f"WHERE {self._range(at)} AND value IN ({chosen}) GROUP BY value, bucket ORDER BY value, bucket"
        )

    def sql(self) -> tuple[str, dict[str, Any]]:
        """The buckets of the groups that cost most over the range (then the busiest), ranked over the range itself:
        one statement, whose ranking reads a row per value and block of the range."""
        at, table = self.grain.column, self.grain.table
        top = (
            f"SELECT value FROM {table} WHERE {self._range(at)} GROUP BY value "
            "ORDER BY sum(cost_usd) DESC, sum(requests) DESC, value LIMIT {groups:UInt32}"
        )
        return self._buckets(top), self._params(self.since, self.until, groups=self.groups)

    def bounds_sql(self, count: int, count_values: bool = False) -> tuple[str, dict[str, Any]]:
        """The ``count`` values that cost most over the blocks covering the range, with that cost: a bound of what
        each spent within the range (costs are never negative: prices are validated >= 0); and with ``count_values``
        how many values the cover holds (a window over every group, so only when asked)."""
        at, table = self.cover.column, self.cover.table
        held = ", count() OVER () AS held" if count_values else ""
        sql = (
            f"SELECT value, sum(cost_usd) AS bound{held} FROM {table} WHERE {self._range(at)} GROUP BY value "
            "ORDER BY bound DESC, sum(requests) DESC, value LIMIT {count:UInt32}"
        )
        cover = self._params(self.cover.floor(self.since), self.cover.ceil(self.until), count=count)
        return sql, cover

    def even_share(self, now: datetime) -> float:
        """The range's part of the time its cover has had so far (nothing is spent after ``now``)."""
        first, last = self.cover.floor(self.since), min(self.cover.ceil(self.until), now)
        inside = min(self.until, now) - self.since
        if inside <= timedelta(0) or last <= first:
            return 1.0
        return min(1.0, inside / (last - first))

    def candidates_sql(self, values: list[str]) -> tuple[str, dict[str, Any]]:
        """The buckets of the groups that cost most over the range among ``values``, ranked over the range itself."""
        at, table = self.grain.column, BY_VALUE[self.grain.name]
        # A JSON array as one string parameter: both engines bind it alike. A constant set rather than a subquery
        # (``IN (SELECT arrayJoin(…))``), which costs a third more at 40 values.
        candidates = "JSONExtract({candidates:String}, 'Array(String)')"
        top = (
            f"SELECT value FROM {table} WHERE {self._range(at)} AND value IN {candidates} GROUP BY value "
            "ORDER BY sum(cost_usd) DESC, sum(requests) DESC, value LIMIT {groups:UInt32}"
        )
        params = self._params(self.since, self.until, groups=self.groups, candidates=orjson.dumps(values).decode())
        return self._buckets(top), params

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


async def usage_rows(store: Store, query: UsageQuery) -> list[dict[str, Any]]:
    """The rows of ``query``'s answer. When the range spans more blocks than its cover and the dimension has many
    values, the values are first bounded over the cover (a few rows per value), the top of those ranked over the range
    itself, and the result kept if no value left out could have spent more than the last one kept; otherwise the
    range itself is ranked."""
    seen_at, values = _values_seen.get(query.group_by, (0.0, 0))
    fresh = time.monotonic() - seen_at < VALUES_SEEN_FOR_S
    if query.cover is query.grain or (fresh and values * query.grain.blocks(query.since, query.until) <= EXACT_ROWS):
        return await store.select(*query.sql())
    most = max(BOUNDS_PER_GROUP * query.groups, MIN_BOUNDS)
    bounds = await store.select(*query.bounds_sql(most + 1, count_values=not fresh))
    if not bounds:
        return []
    if not fresh:
        _values_seen[query.group_by] = (time.monotonic(), int(bounds[0]["held"]))
    if len(bounds) <= query.groups:
        taken = len(bounds)
    else:
        even = float(bounds[query.groups - 1]["bound"]) * query.even_share(datetime.now(UTC)) * EVEN_SHARE
        # Never the bound past ``most``: it only says whether values beyond those read exist.
        taken = min(most, max(query.groups, sum(1 for b in bounds if float(b["bound"]) >= even)))
    while True:
        rows = await store.select(*query.candidates_sql([b["value"] for b in bounds[:taken]]))
        if taken == len(bounds) <= most:  # every value with rows in the cover was ranked
            return rows
        # Sums of floats in another order differ in the last digits: a bound must be below by more than that.
        least = _least_kept(rows, query.groups) * (1 - BOUND_MARGIN)
        reach = next((n for n, b in enumerate(bounds) if float(b["bound"]) < least), None)
        if reach is None:  # values beyond the bounds read may have spent as much
            break
        if reach <= taken:  # no value left out could have spent more than the last group kept
            return rows
        taken = reach  # the values whose bounds reach the last group kept: the second round ranks them all
    return await store.select(*query.sql())


def _least_kept(rows: list[dict[str, Any]], groups: int) -> float:
    """What the last group kept spent over the range; 0 when fewer than ``groups`` candidates had rows in it (then any
    value left out with rows would be kept)."""
    cost: dict[str, float] = defaultdict(float)
    for row in rows:
        cost[row["value"]] += float(row["cost_usd"])
    return min(cost.values()) if len(cost) == groups else 0.0


class UsageApi:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def usage(self, params: dict[str, str]) -> dict[str, Any]:
        query = UsageQuery(params)
        return query.answer(await usage_rows(self.store, query))

    async def endpoint(self, request: Request) -> Response:
        try:
            return JSONResponse(await self.usage(dict(request.query_params)))
        except InvalidQuery as exc:
            return JSONResponse(error_json(str(exc), "invalid_request_error"), status_code=400)

    def routes(self) -> list[Route]:
        return [Route("/api/usage", self.endpoint, methods=["GET"])]
