"""``GET /api/usage`` and the usage page: tokens, requests, errors and cost per group and time bucket, answered from
the rollup, against the record they summarise."""

from __future__ import annotations

import contextlib
import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import openai
import pytest

from plumbing.store.base import Store
from schemas.cost import Cost
from schemas.events import RequestEvent, ResponseEvent
from schemas.view import Usage
from services.console.usage import GROUP_BY, MEASURES
from tests.conftest import API_KEY
from tests.support.agents import attribution, new_agent
from tests.support.keys import create_key, create_profile
from tests.support.store_runner import run_on_chdb

START = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)


def events(seed: int, count: int) -> list[tuple[RequestEvent, ResponseEvent]]:
    """Interactions over three days, of several agents, users, models and profiles: failures, unpriced models and
    estimated counts among them."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        started = START + timedelta(minutes=rng.randrange(3 * 24 * 60), microseconds=rng.randrange(10**6))
        common = dict(
            interaction_id=str(uuid.UUID(int=rng.getrandbits(128))),
            started_at=started,
            profile_id=rng.choice(["default", "strict", "lab"]),
            agent_id=rng.choice(["agent-a", "agent-b", "agent-c", ""]),
            user_id=rng.choice(["u1", "u2", "u3", "u4", ""]),
            provider=rng.choice(["openai", "anthropic"]),
            model=rng.choice(["gpt-4o", "claude-sonnet-4-5", "in-house"]),
            key_prefix=rng.choice(["wk_a1b2c3", "wk_d4e5f6", ""]),
        )
        status = rng.choice([200, 200, 200, 429, 502])
        prompt, answer = rng.randrange(10, 5000), rng.randrange(1, 900)
        usage = Usage(
            input_tokens=prompt,
            output_tokens=answer,
            cached_tokens=rng.randrange(prompt),
            cache_write_tokens=rng.choice([None, rng.randrange(prompt)]),
            reasoning_tokens=rng.choice([None, rng.randrange(answer)]),
            estimated=rng.random() < 0.1,
        )
        if status >= 400:
            usage, cost = Usage(), Cost(note="the answer reported no token usage")
        elif common["model"] == "in-house":
            cost = Cost(estimated=usage.estimated, note="no price")
        else:
            cost = Cost(usd=rng.random() / 100, estimated=usage.estimated, note="catalogue")
        request = RequestEvent(**common, route="/chat/completions")
        response = ResponseEvent(
            **common,
            status=status,
            usage=usage,
            cost=cost,
            finished_at=started + timedelta(seconds=1),
            latency_ms=1000.0,
        )
        out.append((request, response))
    return out


def expected(
    pairs: list[tuple[RequestEvent, ResponseEvent]], group_by: str, bucket_of: Any
) -> dict[str, dict[str, dict[str, float]]]:
    """What the answer must say, worked out from the events themselves."""
    out: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(lambda: dict.fromkeys(MEASURES, 0)))
    for _, r in pairs:
        value = r.key_prefix if group_by == "key" else getattr(r, group_by)
        if group_by == "key" and not value:  # presented no Warden key
            continue
        b = out[value][bucket_of(r.started_at)]
        u = r.usage
        b["requests"] += 1
        b["errors"] += r.status >= 400
        b["input_tokens"] += u.input_tokens or 0
        b["output_tokens"] += u.output_tokens or 0
        b["cached_tokens"] += u.cached_tokens or 0
        b["cache_write_tokens"] += u.cache_write_tokens or 0
        b["reasoning_tokens"] += u.reasoning_tokens or 0
        b["cost_usd"] += r.cost.usd or 0
        b["unpriced"] += r.cost.usd is None and u.input_tokens is not None
        b["estimated"] += r.cost.estimated
    return out


async def scenario(store: Store, seed: int, count: int) -> dict[str, Any]:
    from plumbing.store.migrations import migrate
    from services.console.usage import UsageApi
    from services.logger.rows import interaction_rows, request_row, response_row

    pairs = events(seed, count)
    # Half before the rollup exists (the migration backfills them), half after; halves of some in separate inserts.
    await store.execute("CREATE DATABASE IF NOT EXISTS warden")
    from plumbing.store.migrations import _LEDGER, migration_files, statements

    await store.execute(_LEDGER)
    for version, name, script in migration_files():
        if version < 5:
            for statement in statements(script):
                await store.execute(statement)
            await store.insert("warden.schema_migrations", [{"version": version, "name": name}])
    early, late = pairs[: count // 2], pairs[count // 2 :]
    old_columns = {"cache_write_tokens", "reasoning_tokens"} | {f"cost_{p}" for p in ("usd", "input_usd", "cached_usd")}
    old_columns |= {f"cost_{p}" for p in ("cache_write_usd", "output_usd", "reasoning_usd", "estimated", "note")}
    old_columns |= {"auth", "key_prefix"}
    # Rows recorded before 005 and 006 have neither key nor cost columns: only their tokens, requests and errors count.
    rows = [
        {k: v for k, v in row.items() if k not in old_columns}
        for row in interaction_rows([e for p in early for e in p])
    ]
    await store.insert("warden.interactions", rows)
    await migrate(store)
    await store.insert("warden.interactions", [request_row(r) for r, _ in late[::2]])
    await store.insert("warden.interactions", [response_row(r) for _, r in late[::2]])
    await store.insert("warden.interactions", interaction_rows([e for p in late[1::2] for e in p]))
    api = UsageApi(store)
    answers: dict[str, Any] = {}
    for group_by in GROUP_BY:
        for interval in ("hour", "day"):
            answers[f"{group_by}/{interval}"] = await api.usage(
                {
                    "group_by": group_by,
                    "interval": interval,
                    "since": START.isoformat(),
                    "until": (START + timedelta(days=3)).isoformat(),
                    "limit": "500",
                }
            )
    # A range that starts and ends within hours (days): the whole hours (days) are answered, and said.
    answers["inner"] = await api.usage(
        {"group_by": "model", "interval": "hour", "since": "2026-03-14T09:30:00Z", "until": "2026-03-14T10:10:00Z"}
    )
    answers["inner_days"] = await api.usage(
        {"group_by": "model", "interval": "day", "since": "2026-03-15T09:30:00Z", "until": "2026-03-15T10:10:00Z"}
    )
    answers["top"] = await api.usage(
        {"group_by": "model", "since": START.isoformat(), "until": "2026-03-17T09:00:00Z", "limit": "1"}
    )
    return answers


@pytest.fixture(scope="module")
def answers(tmp_path_factory) -> dict[str, Any]:
    import asyncio

    return asyncio.run(run_on_chdb(tmp_path_factory.mktemp("usage"), scenario, seed=15, count=400))


def _floor(interval: str):
    if interval == "hour":
        return lambda t: t.replace(minute=0, second=0, microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    return lambda t: t.replace(hour=0, minute=0, second=0, microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("interval", ["hour", "day"])
@pytest.mark.parametrize("group_by", GROUP_BY)
def test_usage_groups_every_interaction_once_in_its_bucket(answers, group_by, interval):
    pairs = events(15, 400)
    early = {r.interaction_id for _, r in pairs[:200]}
    # What was recorded before 006 has neither cost nor the counts 006 added: the backfill counts what it has, and
    # its cost is unknown (unpriced) where it reported tokens.
    before = {"cache_write_tokens": None, "reasoning_tokens": None, "estimated": False}
    seen = [
        (q, r.model_copy(update={"cost": Cost(), "usage": r.usage.model_copy(update=before), "key_prefix": ""}))
        if r.interaction_id in early
        else (q, r)
        for q, r in pairs
    ]
    want = expected(seen, group_by, _floor(interval))
    got = answers[f"{group_by}/{interval}"]
    assert (got["group_by"], got["interval"]) == (group_by, interval)
    # Hour buckets read the hourly rollup, day buckets the daily one: the range is whole hours, or whole days.
    if interval == "hour":
        assert (got["since"], got["until"]) == ("2026-03-14T09:00:00Z", "2026-03-17T09:00:00Z")
    else:
        assert (got["since"], got["until"]) == ("2026-03-14T00:00:00Z", "2026-03-18T00:00:00Z")
    assert {g["group"] for g in got["groups"]} == set(want)
    for group in got["groups"]:
        buckets = {b["start"]: b for b in group["buckets"]}
        assert set(buckets) == set(want[group["group"]])
        for start, bucket in buckets.items():
            for measure in MEASURES:
                assert bucket[measure] == pytest.approx(want[group["group"]][start][measure]), (start, measure)
        assert group["totals"]["requests"] == sum(b["requests"] for b in want[group["group"]].values())
    costs = [g["totals"]["cost_usd"] for g in got["groups"]]
    assert costs == sorted(costs, reverse=True)


def test_a_range_within_hours_answers_the_whole_hours_or_days_and_says_so(answers):
    pairs = events(15, 400)
    inner = answers["inner"]
    assert (inner["since"], inner["until"]) == ("2026-03-14T09:00:00Z", "2026-03-14T11:00:00Z")
    in_range = [r for _, r in pairs if START <= r.started_at < START + timedelta(hours=2)]
    assert sum(g["totals"]["requests"] for g in inner["groups"]) == len(in_range) > 0
    days = answers["inner_days"]
    assert (days["since"], days["until"]) == ("2026-03-15T00:00:00Z", "2026-03-16T00:00:00Z")
    day = datetime(2026, 3, 15, tzinfo=UTC)
    in_day = [r for _, r in pairs if day <= r.started_at < day + timedelta(days=1)]
    assert sum(g["totals"]["requests"] for g in days["groups"]) == len(in_day) > 0


def test_limit_keeps_the_groups_that_cost_most(answers):
    (top,) = answers["top"]["groups"]
    everything = answers["model/day"]["groups"]
    assert top["group"] == max(everything, key=lambda g: g["totals"]["cost_usd"])["group"]


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"group_by": "nothing"}, "group_by must be one of"),
        ({"group_by": "model", "interval": "minute"}, "interval must be one of"),
        ({"group_by": "model", "interval": "hour", "since": "2020-01-01T00:00:00Z"}, "more than 2000 hours"),
        ({"group_by": "model", "since": "2026-03-15T00:00:00Z", "until": "2026-03-14T00:00:00Z"}, "before until"),
        ({"group_by": "model", "since": "yesterday"}, "ISO 8601"),
        ({"group_by": "model", "limit": "0"}, "limit must be"),
    ],
)
def test_a_question_the_api_cannot_answer_is_a_400_saying_why(warden, params, says):
    response = httpx.get(f"{warden.url}/api/usage", params=params, timeout=10)
    assert response.status_code == 400
    assert says in response.json()["error"]["message"]


def test_usage_through_the_proxy_matches_the_record_and_the_page_charts_it(warden):
    agent, user = new_agent(), new_agent("user")
    sdk = openai.OpenAI(
        base_url=f"{warden.url}/v1/openai", api_key=API_KEY, default_headers=attribution(agent, user), max_retries=0
    )
    since = datetime.now(UTC) - timedelta(minutes=1)
    for content in ("[[cached:10]] one", "[[reasoning:3]] two", "[[error:500]] three"):
        with contextlib.suppress(openai.InternalServerError):
            sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": content}])
    items: list[dict[str, Any]] = []
    for _ in range(200):
        items = warden.wait_for(lambda i: i["status"] is not None, agent_id=agent, limit=10)
        if len(items) == 3:
            break
    assert len(items) == 3
    params = {"group_by": "user_id", "since": since.isoformat(), "limit": "500"}
    answer = httpx.get(f"{warden.url}/api/usage", params=params, timeout=10).json()
    (group,) = [g for g in answer["groups"] if g["group"] == user]
    details = [warden.detail(i["interaction_id"]) for i in items]
    assert group["totals"]["requests"] == 3 and group["totals"]["errors"] == 1
    assert group["totals"]["cost_usd"] == pytest.approx(sum(d["cost"]["usd"] or 0 for d in details), rel=1e-9)
    assert group["totals"]["cached_tokens"] == 10 and group["totals"]["reasoning_tokens"] == 3
    assert group["totals"]["input_tokens"] == sum(d["usage"]["input_tokens"] or 0 for d in details)

    page = httpx.get(f"{warden.url}/usage", params=params, timeout=10)
    assert page.status_code == 200
    assert f"<h2>{user}</h2>" in page.text
    assert '<script id="usage-data" type="application/json">' in page.text
    assert '<script src="/static/vendor/uplot/uPlot.iife.min.js" defer></script>' in page.text
    chart_lib = httpx.get(f"{warden.url}/static/vendor/uplot/uPlot.iife.min.js", timeout=10)
    assert chart_lib.status_code == 200 and "uPlot" in chart_lib.text
    assert httpx.get(f"{warden.url}/static/usage.js", timeout=10).status_code == 200


def test_usage_by_key_matches_the_record_of_the_keys_interactions(warden):
    profile = create_profile(warden, auth="managed")
    key = create_key(warden, profile, new_agent())
    sdk = openai.OpenAI(base_url=f"{warden.url}/v1/openai", api_key=key.secret, max_retries=0)
    since = datetime.now(UTC) - timedelta(minutes=1)
    for content in ("[[cached:7]] one", "two"):
        sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": content}])
    items: list[dict[str, Any]] = []
    for _ in range(200):
        items = warden.wait_for(lambda i: i["status"] is not None, agent_id=key.agent_id, limit=10)
        if len(items) == 2:
            break
    assert len(items) == 2
    details = [warden.detail(i["interaction_id"]) for i in items]
    # The detail keeps the key's prefix (the view migration 006 made again carries it) and the rollup groups by it.
    assert [d["key_prefix"] for d in details] == [key.prefix, key.prefix]
    params = {"group_by": "key", "since": since.isoformat(), "limit": "500"}
    answer = httpx.get(f"{warden.url}/api/usage", params=params, timeout=10).json()
    assert "" not in {g["group"] for g in answer["groups"]}
    (group,) = [g for g in answer["groups"] if g["group"] == key.prefix]
    assert group["totals"]["requests"] == 2 and group["totals"]["cached_tokens"] == 7
    assert group["totals"]["cost_usd"] == pytest.approx(sum(d["cost"]["usd"] or 0 for d in details), rel=1e-9)
    assert group["totals"]["input_tokens"] == sum(d["usage"]["input_tokens"] or 0 for d in details)
