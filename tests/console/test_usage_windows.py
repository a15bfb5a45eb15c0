"""``GET /api/usage`` over windows whose edges fall mid-hour and mid-day or exactly on an hour's, a day's, a week's or a
month's start, on both engines, against a direct aggregation of ``warden.interactions``: whichever way the groups are
chosen (ranked over the range itself, chosen from the bounds of the weeks or months that cover it in one round or two,
or ranked over the range after the bounds could not decide), the answer is the record's, ties (equal cost, then equal
requests: by name), the empty user id and names that need quoting included."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from plumbing.store.base import Store
from schemas.cost import Cost
from schemas.events import RequestEvent, ResponseEvent
from schemas.view import Usage
from services.console.usage import GROUP_BY, MEASURES
from tests.store.test_engines import on_store  # noqa: F401  (the fixture: the scenario on each engine)

BEGIN = datetime(2025, 1, 6, tzinfo=UTC)  # a Monday, long before what other tests record
DAYS = 45
BURST_WEEK = BEGIN + timedelta(weeks=3)
TIE_WEEK = BEGIN + timedelta(weeks=4)
EVEN_WEEK = BEGIN + timedelta(weeks=5)
FREE_WEEK = BEGIN + timedelta(weeks=7)  # after the 45 days: nothing else in it
MONTH_START = datetime(2025, 2, 1, tzinfo=UTC)  # a Saturday, inside the 45 days
QUOTED = 'o\'brien \\ "zoë"'


def _pair(
    rng: random.Random, started: datetime, user: str, cost: float | None, status: int | None = None
) -> list[RequestEvent | ResponseEvent]:
    common = dict(
        interaction_id=str(uuid.UUID(int=rng.getrandbits(128))),
        started_at=started,
        profile_id=rng.choice(["default", "strict", "lab"]),
        agent_id=f"agent-{int(30 * rng.random() ** 2)}",
        user_id=user,
        provider=rng.choice(["openai", "anthropic"]),
        model=rng.choice(["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "in-house"]),
        key_prefix=rng.choice(["wk_a1b2c3", "wk_d4e5f6", "wk_0a0b0c", ""]),
    )
    status = status or rng.choice([200] * 8 + [429, 502])
    prompt, answer = rng.randrange(10, 5000), rng.randrange(1, 900)
    usage = Usage(
        input_tokens=prompt,
        output_tokens=answer,
        cached_tokens=rng.randrange(prompt),
        reasoning_tokens=rng.choice([None, rng.randrange(answer)]),
        estimated=rng.random() < 0.1,
    )
    priced = Cost(usd=cost, estimated=usage.estimated, note="catalogue") if cost is not None else Cost(note="no price")
    response = ResponseEvent(
        **common,
        status=status,
        usage=usage if status < 400 else Usage(),
        cost=priced if status < 400 else Cost(note="the answer reported no token usage"),
        finished_at=started + timedelta(seconds=1),
        latency_ms=1000.0,
    )
    return [RequestEvent(**common, route="/chat/completions"), response]


def events(seed: int, count: int) -> list[RequestEvent | ResponseEvent]:
    """Interactions over 45 days by 150 users, a few of whom spend most (as users do), and some with no user id; and:
    - on the Sunday of one week, 60 users who spend more than anyone, all at once: bounds by the week are high for
      them, though they spent nothing on the other days;
    - in the next week, users who tie: three with one answer of the same cost, one with the same cost over two
      answers (more requests: ranked first), one whose name needs quoting;
    - in the week after, 40 users who spend about the same every day, and 30 who spend more than them on its Sunday
      but little on its Tuesday: ranked by their bounds first, those 30 are the groups kept, at a spend so low that
      more bounds reach it than the first round ranked;
    - answers at the very start of a month (a Saturday), of the Monday after it, and just before the month;
    - in a week of its own, answers with no price only: 110 users with three on its Sunday, more than the bounds read,
      and one with two within the range, whose bound is below all of theirs."""
    rng = random.Random(seed)
    out: list[RequestEvent | ResponseEvent] = []
    for _ in range(count):
        started = BEGIN + timedelta(seconds=rng.randrange(DAYS * 86400), microseconds=rng.randrange(10**6))
        user = "" if rng.random() < 0.05 else f"user-{int(150 * rng.random() ** 3)}"
        out += _pair(rng, started, user, None if rng.random() < 0.05 else rng.random() / 100)
    sunday = BURST_WEEK + timedelta(days=6, hours=12)
    for n in range(60):
        out += _pair(rng, sunday + timedelta(seconds=n), f"burst-{n}", 5 + rng.random())
    wednesday = TIE_WEEK + timedelta(days=2, hours=9)
    for user in ("tie-c", "tie-a", "tie-b"):
        out += _pair(rng, wednesday, user, 3.0, status=200)
    out += _pair(rng, wednesday, "tie-d", 1.5, status=200) + _pair(rng, wednesday, "tie-d", 1.5, status=200)
    out += _pair(rng, wednesday + timedelta(hours=30), QUOTED, 2.0, status=200)
    out += _pair(rng, wednesday + timedelta(hours=31), "", 2.5, status=200)
    for day in range(7):
        for n in range(40):
            at = EVEN_WEEK + timedelta(days=day, hours=10, minutes=n)
            out += _pair(rng, at, f"even-{n}", 1 + rng.random() / 10, status=200)
    for n in range(30):
        out += _pair(rng, EVEN_WEEK + timedelta(days=6, hours=9), f"sunday-{n}", 20 + rng.random(), status=200)
        out += _pair(rng, EVEN_WEEK + timedelta(days=1, hours=9), f"sunday-{n}", 0.1, status=200)
    for at in (MONTH_START, MONTH_START + timedelta(days=2), MONTH_START - timedelta(microseconds=1)):
        out += _pair(rng, at, "edge", 4.0, status=200)
    for n in range(110):
        for _ in range(3):
            out += _pair(rng, FREE_WEEK + timedelta(days=6, hours=8), f"zz-sunday-{n}", None, status=200)
    for _ in range(2):
        out += _pair(rng, FREE_WEEK + timedelta(days=2, hours=8), "aa-wednesday", None, status=200)
    return out


def windows(seed: int) -> list[dict[str, str]]:
    """Random questions whose edges fall mid-hour (mid-day), from half an hour to five weeks, every grouping, and the
    ones that take each way of choosing the groups."""
    rng = random.Random(seed)
    out = []
    for n in range(24):
        hours = rng.choice([0.5, 2.5, 7, 30, 47, 4 * 24 + 5, 9 * 24, 20 * 24 + 3, 33 * 24])
        since = BEGIN + timedelta(seconds=rng.randrange((DAYS * 24 - int(hours)) * 3600))
        interval = "hour" if hours <= 48 and n % 3 else rng.choice(["day", "week", "month"])
        out.append(
            {
                "group_by": GROUP_BY[n % len(GROUP_BY)],
                "since": since.isoformat(),
                "until": (since + timedelta(hours=hours)).isoformat(),
                "interval": interval,
                "limit": rng.choice(["1", "3", "5", "500"]),
            }
        )
    # Within the burst's week but not on its Sunday: the week's bounds point at users who spent nothing here.
    inside = BURST_WEEK + timedelta(hours=1, minutes=20)
    until = inside + timedelta(days=4, hours=3)
    out.append({"group_by": "user_id", "since": inside.isoformat(), "until": until.isoformat(), "interval": "day"})
    out[-1]["limit"] = "3"
    # Ties at the cut, and a name that needs quoting among the candidates (the week is the cover).
    inside = TIE_WEEK + timedelta(hours=1, minutes=20)
    for limit in ("1", "3", "4", "7"):
        until = inside + timedelta(days=4, hours=3)
        out.append({"group_by": "user_id", "since": inside.isoformat(), "until": until.isoformat(), "limit": limit})
    # More bounds reach the last group kept than the first round ranks.
    inside = EVEN_WEEK + timedelta(hours=1, minutes=20)
    until = inside + timedelta(days=4, hours=3)
    out.append({"group_by": "user_id", "since": inside.isoformat(), "until": until.isoformat(), "limit": "3"})
    # Every bound is 0 and more values have one than are read: the group is beyond them.
    inside = FREE_WEEK + timedelta(hours=1, minutes=20)
    until = inside + timedelta(days=4, hours=3)
    out.append({"group_by": "user_id", "since": inside.isoformat(), "until": until.isoformat(), "limit": "3"})
    # Edges exactly on an hour's, a day's, a week's and a month's start.
    monday = MONTH_START + timedelta(days=2)
    for since, until, interval in (
        (MONTH_START, monday, "hour"),
        (MONTH_START - timedelta(days=5), monday, "day"),
        (monday - timedelta(weeks=2), monday + timedelta(weeks=1), "week"),
        (BEGIN, BEGIN + timedelta(days=DAYS), "month"),
        (MONTH_START, MONTH_START + timedelta(days=5), "day"),
    ):
        for group_by in ("user_id", "agent_id"):
            window = {"since": since.isoformat(), "until": until.isoformat(), "interval": interval, "limit": "5"}
            out.append({"group_by": group_by, **window})
    return out


class CountingStore:
    """The store, noting the statements a question takes: ``range`` (ranked over the range itself), ``bounds`` (the
    bounds over the cover), ``candidates`` (a round ranking values taken from the bounds)."""

    def __init__(self, store: Store) -> None:
        self.store, self.statements = store, []

    async def select(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        kind = "bounds" if " AS bound" in sql else "candidates" if "{candidates:String}" in sql else "range"
        self.statements.append(kind)
        return await self.store.select(sql, params)


async def against_the_record(store: Store, seed: int, count: int) -> dict[str, Any]:
    from plumbing.store.migrations import migrate
    from services.console import usage
    from services.logger.rows import interaction_rows

    # A dimension this small would be ranked over the range itself: the bounds are what is checked here.
    usage.EXACT_ROWS = 0
    await migrate(store)
    stored = events(seed, count)
    for start in range(0, len(stored), 1000):
        await store.insert("warden.interactions", interaction_rows(stored[start : start + 1000]))
    counting = CountingStore(store)
    api = usage.UsageApi(counting)  # type: ignore[arg-type]
    out = []
    for params in windows(seed):
        counting.statements = []
        answer = await api.usage(params)
        statements = tuple(counting.statements)
        column = "key_prefix" if params["group_by"] == "key" else params["group_by"]
        # Straight from the record, folded (FINAL), per value and hour of the range the answer says it covers.
        record = await store.select(
            "SELECT value, toStartOfHour(at) AS hour, count() AS requests, countIf(code >= 400) AS errors, "
            "sum(ifNull(prompt, 0)) AS input_tokens, sum(ifNull(answer, 0)) AS output_tokens, "
            "sum(ifNull(cached, 0)) AS cached_tokens, sum(ifNull(written, 0)) AS cache_write_tokens, "
            "sum(ifNull(reasoning, 0)) AS reasoning_tokens, sum(ifNull(usd, 0)) AS cost_usd, "
            "countIf(usd IS NULL AND (prompt IS NOT NULL OR answer IS NOT NULL)) AS unpriced, "
            "countIf(guessed = 1) AS estimated "
            # Renamed: an alias equal to a column's name would make the aggregate read itself.
            f"FROM (SELECT {column} AS value, started_at AS at, status AS code, input_tokens AS prompt, "
            "output_tokens AS answer, cached_tokens AS cached, cache_write_tokens AS written, "
            "reasoning_tokens AS reasoning, cost_usd AS usd, cost_estimated AS guessed FROM warden.interactions FINAL "
            "WHERE status IS NOT NULL AND started_at >= {since:DateTime64(6, 'UTC')} "
            "AND started_at < {until:DateTime64(6, 'UTC')}) GROUP BY value, hour",
            {"since": answer["since"][:-1].replace("T", " "), "until": answer["until"][:-1].replace("T", " ")},
        )
        out.append({"params": params, "answer": answer, "record": record, "statements": statements})
    return {"windows": out}


def _bucket(hour: datetime, interval: str) -> str:
    start = hour
    if interval != "hour":
        start = hour.replace(hour=0)
    if interval == "week":
        start -= timedelta(days=start.weekday())
    if interval == "month":
        start = start.replace(day=1)
    return start.strftime("%Y-%m-%dT%H:%M:%SZ")


def expected(window: dict[str, Any]) -> list[tuple[str, dict[str, dict[str, float]]]]:
    """The groups the record says, in the answer's order (cost, then requests, then name), with their buckets."""
    params = window["params"]
    groups: dict[str, dict[str, dict[str, float]]] = defaultdict(
        lambda: defaultdict(lambda: dict.fromkeys(MEASURES, 0))
    )
    for row in window["record"]:
        if params["group_by"] == "key" and row["value"] == "":  # presented no Warden key
            continue
        hour = datetime.fromisoformat(str(row["hour"]).replace("Z", "")).replace(tzinfo=UTC)
        bucket = groups[row["value"]][_bucket(hour, window["answer"]["interval"])]
        for m in MEASURES:
            bucket[m] += float(row[m])

    def rank(item: tuple[str, dict[str, dict[str, float]]]) -> tuple[float, float, str]:
        value, buckets = item
        return -sum(b["cost_usd"] for b in buckets.values()), -sum(b["requests"] for b in buckets.values()), value

    return sorted(groups.items(), key=rank)[: int(params.get("limit", "20"))]


async def test_every_window_answers_what_the_record_says(on_store):  # noqa: F811
    result = await on_store(against_the_record, seed=2026, count=3000)
    ways = defaultdict(int)
    ties = names = empty = 0
    for window in result["windows"]:
        ways[tuple(window["statements"])] += 1
        want = expected(window)
        got = window["answer"]["groups"]
        assert [g["group"] for g in got] == [value for value, _ in want], window["params"]
        for group, (_, buckets) in zip(got, want, strict=True):
            assert {b["start"] for b in group["buckets"]} == set(buckets), window["params"]
            for b in group["buckets"]:
                for m in MEASURES:
                    assert b[m] == pytest.approx(buckets[b["start"]][m], rel=1e-9, abs=1e-12), (window["params"], m)
        costs = [sum(b["cost_usd"] for b in group["buckets"]) for group in got]
        ties += len(costs) != len(set(costs))
        names += QUOTED in [g["group"] for g in got]
        empty += window["params"]["group_by"] == "user_id" and "" in [g["group"] for g in got]
    # Every way of choosing the groups was taken, so each of them was checked against the record: ranked over the
    # range; decided by the bounds in one round, in two; not decided by them.
    assert set(ways) == {
        ("range",),
        ("bounds", "candidates"),
        ("bounds", "candidates", "candidates"),
        ("bounds", "candidates", "range"),
    }, dict(ways)
    # And the answers held groups that tie on cost, a name that needs quoting and the empty user id.
    assert ties and names and empty, (ties, names, empty)
