"""``GET /api/usage`` over windows whose edges fall mid-hour and mid-day, on both engines, against a direct aggregation
of ``warden.interactions``: whichever way the groups are chosen (ranked over the range itself, chosen from the bounds
of the weeks or months that cover it, or ranked over the range after the bounds could not decide), the answer is the
record's."""

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


def _pair(rng: random.Random, started: datetime, user: str, cost: float | None) -> list[RequestEvent | ResponseEvent]:
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
    status = rng.choice([200] * 8 + [429, 502])
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
    """Interactions over 45 days by 150 users, a few of whom spend most (as users do); and, on the Sunday of one
    week, 60 users who spend more than anyone, all at once: bounds by the week are high for them, though they spent
    nothing on the other days."""
    rng = random.Random(seed)
    out: list[RequestEvent | ResponseEvent] = []
    for _ in range(count):
        started = BEGIN + timedelta(seconds=rng.randrange(DAYS * 86400), microseconds=rng.randrange(10**6))
        user = f"user-{int(150 * rng.random() ** 3)}"
        out += _pair(rng, started, user, None if rng.random() < 0.05 else rng.random() / 100)
    sunday = BURST_WEEK + timedelta(days=6, hours=12)
    for n in range(60):
        out += _pair(rng, sunday + timedelta(seconds=n), f"burst-{n}", 5 + rng.random())
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
    return out


class CountingStore:
    """The store, counting the statements a question takes: 1 ranked over the range, 2 chosen from bounds, 3 the
    bounds could not decide."""

    def __init__(self, store: Store) -> None:
        self.store, self.selects = store, 0

    async def select(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        self.selects += 1
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
        counting.selects = 0
        answer = await api.usage(params)
        statements = counting.selects
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
        bucket = groups[row["value"]][_bucket(hour, params["interval"])]
        for m in MEASURES:
            bucket[m] += float(row[m])

    def rank(item: tuple[str, dict[str, dict[str, float]]]) -> tuple[float, float, str]:
        value, buckets = item
        return -sum(b["cost_usd"] for b in buckets.values()), -sum(b["requests"] for b in buckets.values()), value

    return sorted(groups.items(), key=rank)[: int(params.get("limit", "20"))]


async def test_every_window_answers_what_the_record_says(on_store):  # noqa: F811
    result = await on_store(against_the_record, seed=2026, count=3000)
    ways = defaultdict(int)
    for window in result["windows"]:
        ways[window["statements"]] += 1
        want = expected(window)
        got = window["answer"]["groups"]
        assert [g["group"] for g in got] == [value for value, _ in want], window["params"]
        for group, (_, buckets) in zip(got, want, strict=True):
            assert {b["start"] for b in group["buckets"]} == set(buckets), window["params"]
            for b in group["buckets"]:
                for m in MEASURES:
                    assert b[m] == pytest.approx(buckets[b["start"]][m], rel=1e-9, abs=1e-12), (window["params"], m)
    # Every way of choosing the groups was taken, so each of them was checked against the record.
    assert set(ways) == {1, 2, 3}, dict(ways)
