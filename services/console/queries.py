"""The read side's SQL: interaction lists with filters and keyset pagination, and single interactions.

Pure functions building ``{name:Type}``-parameterised SQL, so the same text runs on chDB and on a ClickHouse server.

They read the copies of ``warden.interactions`` that migrations 003 and 004 lay out for the console, never a range
with FINAL: by agent, by user, by time (neither fixed: the newest of everything is the tail of its sort order), by id.

- A list page is read in rounds (``InteractionsApi.page`` drives them), one query each (``list_round``): the newest
  rows matching the row conditions, read in the table's sort order without folding, and the interactions they
  belong to folded with GROUP BY and the table's own aggregate functions (what FINAL would do, to those keys only).
  An interaction's key and attribution columns are the same in its request row and its response row, so unfolded
  rows find exactly the right interactions; a not yet merged one is two rows, which is why a round can come back
  with fewer interactions than rows and the next round goes on after it.
- Status and blocked are folded columns: no half alone decides them. They are checked on the folded interaction; the
  row conditions only narrow which interactions are worth folding (``_folded_conditions``), so some folded ones
  fail, which can also make a round come back short.
- A round of an agent's list reads a time window: only rows since a floor (``ListPlan.floor``), a day before the
  newest possible row first, wider ones while the narrower ones hold too few (the last one unbounded). The logger
  writes in time order, so a table's parts each cover a stretch of time (their merges too): a window's floor lets
  ClickHouse skip every part older than it from the part's min/max of ``started_at`` alone, where a newest-first
  read without one opens every part to compare their newest rows.
- A list filtered on an outcome only some rows have (errors, a status from 400 up, blocked) reads its keys from
  ``interaction_outcomes`` (migration 011: the keys of those rows under each list's lead, sorted by time), then
  folds those interactions by id from the list's copy: two queries a round, which cost less than reading the copy's
  range row by row for the few matching rows when they are sparse (blocked), about as much for 3 % of errors
  (measured: bench/README.md).
- The detail is a point lookup in ``interactions_by_id`` (sorted by id, small granules), folded by the same rules.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from schemas.events import CATEGORIES, INTERACTION_ID, SEVERITIES, SEVERITY_RANK
from schemas.folding import fold_row

MAX_LIMIT = 500
_SUMMARY_COLUMNS = (
    "interaction_id",
    "started_at",
    "agent_id",
    "user_id",
    "session_id",
    "profile_id",
    "provider",
    "model",
    "route",
    "stream",
    "status",
    "finished_at",
    "latency_ms",
    "ttft_ms",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "finish_reason",
    "blocked",
    "error",
    "aborted",
    "untrusted_since",
    "cost_usd",
    "cost_estimated",
)
_BODY_COLUMNS = (
    "request_received",
    "request_sent",
    "request_decisions",
    "response_body",
    "tool_calls",
    "blocked_tool_calls",
    "response_decisions",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_input_usd",
    "cost_cached_usd",
    "cost_cache_write_usd",
    "cost_output_usd",
    "cost_reasoning_usd",
    "cost_note",
)
_DETAIL_COLUMNS = ("auth", "key_prefix")
"""Columns only the detail shows (the list's copies do not carry them)."""
_COST_PARTS = ("input", "cached", "cache_write", "output", "reasoning")
_FOLD = {
    "user_id": "any",
    "session_id": "any",
    "profile_id": "any",
    "provider": "any",
    "model": "any",
    "blocked": "max",
}
"""How a column folds, as its SimpleAggregateFunction in the DDL says; every other non-key column is anyLast (which
skips NULLs: the half that does not know a value leaves it to the half that does)."""

BY_AGENT = "warden.interactions_by_agent"
BY_USER = "warden.interactions_by_user"
BY_TIME = "warden.interactions_by_time"
BY_ID = "warden.interactions_by_id"
OUTCOMES = "warden.interaction_outcomes"
"""Migration 011's keys of the rows that decide an error, a status from 400 up or a block, under each list's lead."""
_SORTING_KEYS = {
    BY_AGENT: ("agent_id", "started_at", "interaction_id"),
    BY_USER: ("user_id", "started_at", "interaction_id", "agent_id"),
    BY_TIME: ("started_at", "interaction_id", "agent_id", "user_id"),
}
_LEADS = {BY_AGENT: "agent_id", BY_USER: "user_id", BY_TIME: None}
_NEWEST_FIRST = " ORDER BY started_at DESC, interaction_id DESC"

FIRST_WINDOW = {BY_AGENT: timedelta(days=1), BY_TIME: timedelta(hours=6)}
"""The first window a list reads, per table: an agent's list (a few agents make most of the traffic), and the newest
of everything, whose windows end at the newest start time stored (``NEWEST_START``) rather than now, so that a store
idle for hours does not cost a round per empty window (measured: bench/README.md). A user's interactions are sparse
(a page of them spans days): per window a round cost about as much as reading everything at once, so those lists
read everything before their cursor at once."""
NEWEST_START = "SELECT max(started_at) AS newest FROM warden.interactions_by_time"
"""The newest start time stored: answered from the parts' min/max of ``started_at``, without reading rows."""
WINDOW_GROWTH = 8
WINDOWS = 3
"""Windows with a floor, each ``WINDOW_GROWTH`` times the previous one (a day, 8 days, 64 days for an agent); then one
without."""
_NO_ID = "00000000-0000-0000-0000-000000000000"
"""The smallest interaction id: ``(floor, _NO_ID)`` as ``after`` is everything before the floor."""
_STORED_TIME = "%Y-%m-%d %H:%M:%S.%f"

MAX_ROWS_PER_ROUND = 4096
"""Rows one round of a list looks at, at most: the keys of all of them are a set the folding query builds."""

_STATUS_CLASS = re.compile(r"^([1-5])xx$")


class InvalidQuery(ValueError):
    pass


@dataclass(slots=True)
class InteractionFilter:
    agent_id: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    profile_id: str | None = None
    provider: str | None = None
    model: str | None = None
    status: str | None = None
    """An exact code (``200``), a class (``4xx``), ``error`` (>= 400 or failed) or ``in_flight``."""
    blocked: bool | None = None
    violation_category: str | None = None
    min_severity: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 50
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class ListPlan:
    """One list request, ready to be read in rounds."""

    table: str
    lead: str | None
    """The table's column before the time in its key (none in the table sorted by time); a list's keys are
    ``(lead, started_at, interaction_id)``."""
    where: tuple[str, ...]
    """Row conditions: exact for attribution, time and violations, necessary for the folded columns."""
    having: tuple[str, ...]
    """Conditions on the folded row (status, blocked), in the names of the folded columns: empty when there are no
    filters on folded columns."""
    params: dict[str, Any]
    limit: int
    after: tuple[str, str] | None
    """The cursor: only keys before this ``(started_at, interaction_id)``."""
    reads_rows: bool
    """Whether a round reads the list's rows themselves (see ``list_round``) rather than their keys first."""
    anchor: datetime
    """The newest a listed interaction can be (the cursor's time, else ``until``, else now; for the newest of
    everything the newest start stored, see ``anchored``): windows end there."""
    since: datetime | None = None
    by_outcome: bool = False
    """Whether a round reads its keys from ``OUTCOMES`` (a filter only rows there can pass: see ``_by_outcome``)."""

    def floor(self, window: int) -> datetime | None:
        """The floor of the list's ``window``-th window (from 0), None once windows are unbounded (or reach
        ``since``, a condition of every round already)."""
        if window >= WINDOWS or self.table not in FIRST_WINDOW or self.by_outcome:
            return None
        floor = self.anchor - FIRST_WINDOW[self.table] * WINDOW_GROWTH**window
        return None if self.since is not None and floor <= self.since else floor

    @staticmethod
    def below(floor: datetime) -> tuple[str, str]:
        """``after`` for the window following one whose floor was ``floor``: everything older than it."""
        return floor.strftime(_STORED_TIME), _NO_ID

    @property
    def first_round(self) -> int:
        """Rows the first round looks at: most interactions are one row, the newest often two (request and
        response not folded yet)."""
        return min(MAX_ROWS_PER_ROUND, 2 * (self.limit + 1))


def encode_cursor(started_at: str, interaction_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([started_at, interaction_id])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        started_at, interaction_id = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except Exception as exc:
        raise InvalidQuery("cursor is not one this API returned") from exc
    if (
        not isinstance(started_at, str)
        or not isinstance(interaction_id, str)
        or not INTERACTION_ID.fullmatch(interaction_id)
    ):
        raise InvalidQuery("cursor is not one this API returned")
    return started_at, interaction_id


def plan_list(f: InteractionFilter, now: datetime | None = None) -> ListPlan:
    """Validate a filter and choose the table: sorted by user when the user is known (a user's interactions are one
    range there, also with an agent: a user's range is the narrower one), sorted by agent when the agent is, else
    sorted by time (the newest interactions are the table's tail)."""
    if not 1 <= f.limit <= MAX_LIMIT:
        raise InvalidQuery(f"limit must be between 1 and {MAX_LIMIT}")
    table = BY_USER if f.user_id is not None else BY_AGENT if f.agent_id is not None else BY_TIME
    where: list[str] = []
    params: dict[str, Any] = {}
    for column in ("agent_id", "user_id", "session_id", "profile_id", "provider", "model"):
        value = getattr(f, column)
        if value is not None:
            where.append(f"{column} = {{{column}:String}}")
            params[column] = value
    if f.since is not None:
        where.append("started_at >= {since:DateTime64(6, 'UTC')}")
        params["since"] = f.since.strftime("%Y-%m-%d %H:%M:%S.%f")
    if f.until is not None:
        where.append("started_at < {until:DateTime64(6, 'UTC')}")
        params["until"] = f.until.strftime("%Y-%m-%d %H:%M:%S.%f")
    after = decode_cursor(f.cursor) if f.cursor else None
    row_conditions, having = _folded_conditions(f)
    where += row_conditions
    if f.violation_category is not None or f.min_severity is not None:
        where.append(_violation_condition(f, params))
    lead = _LEADS[table]
    # Rows can be the answer when no folded condition drops a half (see list_round): the newest rows are the tail of
    # one range (the lead's, or the table sorted by time), read in order, an interaction's rows next to each other.
    reads_rows = not having
    anchor = _utc(_parsed(after[0]) if after else None) or _utc(f.until) or now or datetime.now(UTC)
    by_outcome = _by_outcome(f)
    if by_outcome:
        params["lead"], params["lead_value"] = lead or "", params.get(lead, "") if lead else ""
    return ListPlan(
        table, lead, tuple(where), tuple(having), params, f.limit, after, reads_rows, anchor, _utc(f.since), by_outcome
    )


def anchored(plan: ListPlan, newest: str) -> ListPlan:
    """``plan`` with its windows ending at ``newest`` (a stored start time; rows stored after it are read too: a
    window's floor is the only bound it sets)."""
    return replace(plan, anchor=_utc(_parsed(newest)) or plan.anchor)


def _by_outcome(f: InteractionFilter) -> bool:
    """Whether only interactions with a row in ``OUTCOMES`` can pass the filter: blocked (some half was), an error
    (the response half has it), a status class or code from 400 up (the response half's status)."""
    if f.blocked:
        return True
    status = f.status or ""
    match = _STATUS_CLASS.match(status)
    return (
        status == "error"
        or (match is not None and int(match.group(1)) >= 4)
        or (status.isdigit() and int(status) >= 400)
    )


def _parsed(stored: str) -> datetime | None:
    """A cursor's time; None if it is not one (a cursor is the client's: it only decides where windows end)."""
    try:
        return datetime.fromisoformat(stored)
    except ValueError:
        return None


def _utc(when: datetime | None) -> datetime | None:
    if when is None:
        return None
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


def list_round(
    plan: ListPlan, after: tuple[str, str] | None, count: int, floor: datetime | None = None
) -> tuple[str, dict[str, Any]]:
    """One round of a list, one query: the interactions of the newest ``count`` rows before ``after`` (and since
    ``floor``) that match the row conditions, read in the table's sort order. ``Round.read`` makes a ``Round`` of the
    answer.

    Without folded conditions every row of a matching interaction matches (the conditions are on columns both halves
    carry alike), and its rows are neighbours in the sort order: the rows themselves are the answer, folded as
    ``fold`` does (``plan.reads_rows``). Otherwise the rows only say which interactions to fold (a row condition on a
    folded column may hold for one half only): an outer query folds each from all its rows with GROUP BY and the
    table's own functions (what FINAL would do, to these keys only), with ``_rows``: how many rows it was folded
    from, and ``_passes``: whether it passes the folded conditions.

    A ``plan.by_outcome`` round's query reads only the keys of the newest ``count`` matching rows of
    ``interaction_outcomes``; ``outcome_fold`` is its second query and ``Round.of_outcomes`` makes the ``Round``."""
    where = list(plan.where)
    params = dict(plan.params, count=count)
    # Bounds on the time alone, which the parts' min/max of started_at and the primary key can skip by; an
    # interaction's rows all have the same time, so they hold for all its rows or none.
    bounds = []
    if floor is not None:
        bounds.append("started_at >= {floor:DateTime64(6, 'UTC')}")
        params["floor"] = floor.strftime(_STORED_TIME)
    if after is not None:
        bounds.append("started_at <= {after_ts:DateTime64(6, 'UTC')}")
        params["after_ts"], params["after_id"] = after
    where += bounds
    if after is not None:
        # The exact keyset condition.
        where.append("(started_at, interaction_id) < ({after_ts:DateTime64(6, 'UTC')}, {after_id:UUID})")
    condition = " WHERE " + " AND ".join(where) if where else ""
    newest = f"{condition}{_NEWEST_FIRST} LIMIT {{count:UInt32}}"
    if plan.reads_rows:
        return f"SELECT {', '.join(_SUMMARY_COLUMNS)} FROM {plan.table}{newest}", params
    if plan.by_outcome:
        # Only the keys, from the lead's range of the narrow copy; ``outcome_fold`` folds them in a second query.
        # The whole sort key in ORDER BY: given only the time, ClickHouse does not see that the range fixes lead and
        # value, and sorts the range (every error's key for the newest of everything) instead of reading its tail.
        narrow = " AND ".join(["lead = {lead:String}", "value = {lead_value:String}", *where])
        order = _NEWEST_FIRST.replace(" ORDER BY ", " ORDER BY lead DESC, value DESC, ")
        return f"SELECT started_at, interaction_id FROM {OUTCOMES} WHERE {narrow}{order} LIMIT {{count:UInt32}}", params
    key = f"{plan.lead}, started_at, interaction_id" if plan.lead else "started_at, interaction_id"
    keys = f"SELECT {key} FROM {plan.table}{newest}"
    sorting_key = _SORTING_KEYS[plan.table]
    # In the SELECT list the names of the folded columns are the folded values: the conditions apply to those.
    passes = " AND ".join(plan.having) or "1"
    sql = (
        f"SELECT {_folded(_SUMMARY_COLUMNS, sorting_key)}, count() AS _rows, ({passes}) AS _passes "
        f"FROM {plan.table} WHERE {' AND '.join([f'({key}) IN ({keys})', *bounds])} "
        f"GROUP BY {', '.join(sorting_key)}{_NEWEST_FIRST}"
    )
    return sql, params


def fold_keys(answer: list[dict[str, Any]], wanted: int) -> list[dict[str, Any]]:
    """The keys of the newest ``wanted`` interactions of a ``by_outcome`` round's answer: only those are folded (the
    round asks for more rows than the page lacks, as an interaction can have two there; folding all of them read
    twice the copy's span of time for rows the page does not show)."""
    seen: set[str] = set()
    keys: list[dict[str, Any]] = []
    for key in answer:
        if key["interaction_id"] in seen:
            continue
        if len(seen) == wanted:
            break
        seen.add(key["interaction_id"])
        keys.append(key)
    return keys


def outcome_fold(plan: ListPlan, keys: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The second query of a round of a ``by_outcome`` list: the interactions of ``keys`` (what its ``list_round``
    found, newest first) folded from the list's copy as ``list_round`` folds them, with ``_passes``. Their ids as a
    constant set, within the lead's range and the keys' span of time, which the copy's primary key and its parts'
    min/max of ``started_at`` narrow to a few granules."""
    sorting_key = _SORTING_KEYS[plan.table]
    passes = " AND ".join(plan.having) or "1"
    where = [
        "started_at >= {oldest:DateTime64(6, 'UTC')}",
        "started_at <= {newest:DateTime64(6, 'UTC')}",
        "interaction_id IN JSONExtract({ids:String}, 'Array(UUID)')",
    ]
    if plan.lead:
        where.insert(0, f"{plan.lead} = {{lead_value:String}}")
    params = {
        "lead_value": plan.params["lead_value"],
        "oldest": keys[-1]["started_at"],
        "newest": keys[0]["started_at"],
        "ids": orjson.dumps(sorted({k["interaction_id"] for k in keys})).decode(),
    }
    sql = (
        f"SELECT {_folded(_SUMMARY_COLUMNS, sorting_key)}, ({passes}) AS _passes FROM {plan.table} "
        f"WHERE {' AND '.join(where)} GROUP BY {', '.join(sorting_key)}{_NEWEST_FIRST}"
    )
    return sql, params


@dataclass(frozen=True, slots=True)
class Round:
    """What one ``list_round`` found."""

    rows: list[dict[str, Any]]
    """The interactions that pass every condition, folded, newest first."""
    last: tuple[str, str] | None
    """``(started_at, interaction_id)`` of the oldest interaction the round dealt with: the next one starts after."""
    exhausted: bool
    """Fewer rows matched than the round asked for: no older interaction matches."""

    @classmethod
    def read(cls, plan: ListPlan, answer: list[dict[str, Any]], count: int, after: tuple[str, str] | None) -> Round:
        if plan.reads_rows:
            return cls._of_rows(answer, count, after)
        return cls._of_folded(answer, count, after)

    @classmethod
    def of_outcomes(
        cls,
        answer: list[dict[str, Any]],
        keys: list[dict[str, Any]],
        folded: list[dict[str, Any]],
        count: int,
        after: tuple[str, str] | None,
    ) -> Round:
        """A round of a ``by_outcome`` list: ``answer`` its ``list_round`` answer, ``keys`` the part of it that was
        folded (``fold_keys``), ``folded`` its ``outcome_fold`` answer. The round went as far as the oldest key
        folded (an interaction may have several rows there before they are merged, so the next round starts after
        it); the range holds no more only if the answer was short and all of it was folded."""
        last = (keys[-1]["started_at"], keys[-1]["interaction_id"]) if keys else after
        everything = len({k["interaction_id"] for k in answer}) == len(keys)
        return cls([row for row in folded if row.pop("_passes")], last, len(answer) < count and everything)

    @classmethod
    def _of_rows(cls, answer: list[dict[str, Any]], count: int, after: tuple[str, str] | None) -> Round:
        groups: list[list[dict[str, Any]]] = []
        for row in answer:
            if groups and groups[-1][0]["interaction_id"] == row["interaction_id"]:
                groups[-1].append(row)
            else:
                groups.append([row])
        exhausted = len(answer) < count
        if not exhausted and (len(groups) > 1 or count < MAX_ROWS_PER_ROUND):
            groups.pop()  # the oldest interaction may have rows past the end of the round: the next round reads it
        rows = [_fold_rows(group) for group in groups]
        last = (rows[-1]["started_at"], rows[-1]["interaction_id"]) if rows else after
        return cls(rows, last, exhausted)

    @classmethod
    def _of_folded(cls, answer: list[dict[str, Any]], count: int, after: tuple[str, str] | None) -> Round:
        # The rows an interaction was folded from all match the row conditions when there are no folded ones (they
        # are the same in both halves) and at least those that do otherwise: their sum says too much, never too
        # little, so a round it calls not exhausted may be followed by one that finds nothing.
        exhausted = sum(row.pop("_rows") for row in answer) < count
        last = (answer[-1]["started_at"], answer[-1]["interaction_id"]) if answer else after
        return cls([row for row in answer if row.pop("_passes")], last, exhausted)


def _folded(columns: tuple[str, ...], sorting_key: tuple[str, ...]) -> str:
    return ", ".join(c if c in sorting_key else f"{_FOLD.get(c, 'anyLast')}({c}) AS {c}" for c in columns)


def _status_condition(status: str | None) -> tuple[str, bool] | None:
    """The condition of a status filter, and whether it holds for every row of a passing interaction (in flight: no
    half has a status) rather than for one row (a status: the half that has it)."""
    if status is None:
        return None
    if status == "in_flight":
        return "status IS NULL", True
    if status == "error":
        return "(status >= 400 OR error IS NOT NULL)", False
    match = _STATUS_CLASS.match(status)
    if match:
        low = int(match.group(1)) * 100
        return f"status >= {low} AND status < {low + 100}", False
    if status.isdigit() and 100 <= int(status) <= 599:
        return f"status = {int(status)}", False
    raise InvalidQuery("status must be a code (200), a class (4xx), 'error' or 'in_flight'")


def _folded_conditions(f: InteractionFilter) -> tuple[list[str], list[str]]:
    """(row conditions, folded conditions) for the filters on folded columns (status, blocked).

    The folded conditions are the filters themselves, on the folded row (in the folding query's SELECT list, where
    the names are the folded columns). A row condition only narrows which keys are worth folding, so it must hold
    for some row of every interaction that passes: a condition that holds for every row of it does (not blocked: no
    half is; in flight: no half has a status), and so does one that holds for one row (blocked: the half that was;
    a status: the half that has it), but two of those may hold for different rows, so at most one goes on the row."""
    every_row: list[str] = []
    some_row: list[str] = []
    if f.blocked is not None:
        (some_row if f.blocked else every_row).append("blocked = 1" if f.blocked else "blocked = 0")
    status = _status_condition(f.status)
    if status is not None:
        condition, for_every_row = status
        (every_row if for_every_row else some_row).append(condition)
    # Blocked first: far fewer interactions are blocked than have any one status.
    return every_row + some_row[:1], every_row + some_row


def _violation_condition(f: InteractionFilter, params: dict[str, Any]) -> str:
    inner = []
    if f.violation_category is not None:
        if f.violation_category not in CATEGORIES:
            raise InvalidQuery(f"violation_category must be one of {sorted(CATEGORIES)}")
        inner.append("category = {v_category:String}")
        params["v_category"] = f.violation_category
    if f.min_severity is not None:
        if f.min_severity not in SEVERITY_RANK:
            raise InvalidQuery(f"min_severity must be one of {list(SEVERITIES)}")
        inner.append("severity_rank >= {v_rank:UInt8}")
        params["v_rank"] = SEVERITY_RANK[f.min_severity]
    return "interaction_id IN (SELECT interaction_id FROM warden.violations WHERE " + " AND ".join(inner) + ")"


def get_interaction(interaction_id: str) -> tuple[str, dict[str, Any]]:
    """The rows of one interaction, each whole as JSON: a point lookup by id. Two (or more) while its halves are not
    merged yet: ``fold`` makes them one."""
    if not INTERACTION_ID.fullmatch(interaction_id):
        raise InvalidQuery("not an interaction id")
    sql = f"SELECT request_row, response_row FROM {BY_ID} WHERE interaction_id = {{id:UUID}}"
    return sql, {"id": interaction_id}


def fold(answer: list[dict[str, Any]]) -> dict[str, Any] | None:
    """An interaction's rows as the record folds them (``_FOLD``): a value wins over a NULL, blocked is the max.
    Folded here rather than with GROUP BY: for the few rows of one interaction, aggregating in ClickHouse costs more
    than the lookup. The halves never disagree on a column both carry (attribution), so which of two values wins
    does not matter."""
    rows = [orjson.loads(doc) for row in answer for doc in (row["request_row"], row["response_row"]) if doc]
    folded = _fold_rows(rows) if rows else None
    if folded is not None:
        # The detail lists every column, in the record's order, as the list does its own.
        folded = {column: folded.get(column) for column in _SUMMARY_COLUMNS + _BODY_COLUMNS + _DETAIL_COLUMNS}
    return folded


def _fold_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    folded = dict(rows[0])
    for row in rows[1:]:
        fold_row(folded, row)
    return folded


def violations_of(interaction_id: str) -> tuple[str, dict[str, Any]]:
    sql = (
        "SELECT violation_id, detected_at, detector, category, severity, score, action, location, excerpt "
        "FROM warden.violations FINAL WHERE interaction_id = {id:UUID} ORDER BY severity_rank DESC, detected_at"
    )
    return sql, {"id": interaction_id}


def attempts_of(interaction_id: str) -> tuple[str, dict[str, Any]]:
    """The upstream attempts of one interaction (migration 008's copy, sorted by id)."""
    sql = "SELECT attempts FROM warden.interaction_attempts WHERE interaction_id = {id:UUID} LIMIT 1"
    return sql, {"id": interaction_id}


_JSON_COLUMNS = ("request_decisions", "tool_calls", "blocked_tool_calls", "response_decisions")


_TIME_COLUMNS = ("started_at", "finished_at")


def iso_utc(stored: str) -> str:
    """A stored ``DateTime64(6, 'UTC')`` (``2026-03-14 15:09:26.535897``) in ISO 8601 with its time zone
    (``2026-03-14T15:09:26.535897Z``): a time without one is read as local time by most clients."""
    return stored if stored.endswith("Z") else stored.replace(" ", "T", 1) + "Z"


def present(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row as the API shows it: booleans as booleans, JSON columns decoded, in-flight made explicit."""
    out = dict(row)
    for column in ("stream", "blocked", "aborted"):
        if column in out and out[column] is not None:
            out[column] = bool(out[column])
    for column in _JSON_COLUMNS:
        if column in out:
            out[column] = orjson.loads(out[column]) if out[column] else []
    for column in _TIME_COLUMNS:
        if out.get(column):
            out[column] = iso_utc(out[column])
    out["in_flight"] = out.get("status") is None
    out["usage"] = {
        "input_tokens": out.pop("input_tokens", None),
        "output_tokens": out.pop("output_tokens", None),
        "cached_tokens": out.pop("cached_tokens", None),
    }
    # The detail has the counts priced apart and the cost's parts; a list row only the total.
    for column in ("cache_write_tokens", "reasoning_tokens"):
        if column in out:
            out["usage"][column] = out.pop(column)
    cost: dict[str, Any] = {"usd": out.pop("cost_usd", None), "estimated": bool(out.pop("cost_estimated", None))}
    for part in _COST_PARTS:
        if f"cost_{part}_usd" in out:
            cost[f"{part}_usd"] = out.pop(f"cost_{part}_usd")
    if "cost_note" in out:
        cost["note"] = out.pop("cost_note")
    out["cost"] = cost
    return out


def present_violation(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "detected_at": iso_utc(row["detected_at"])} if row.get("detected_at") else row
