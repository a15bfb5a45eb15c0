"""Migration 010 on a store that ran 001 to 009 with interactions in it, on both engines: the copies it rebuilds in
yearly partitions (the daily rollup by value, the weekly bounds) hold what they held before, ``GET /api/usage``
answers the same, running the migration's statements again (a failure part-way, then the retry) counts nothing
twice, and what is recorded afterwards reaches them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from plumbing.store.base import Store
from plumbing.store.migrations import migration_files
from services.console.usage import MEASURES
from tests.console.test_usage_windows import events, windows
from tests.support.clickhouse_fixture import new_clickhouse_server
from tests.support.store_runner import ENGINES, run_on_chdb, run_on_server

# Folded, so that parts merged or not compare alike.
_DAILY = (
    "SELECT dimension, value, toString(day) AS at, sum(requests) AS requests, sum(errors) AS errors, "
    "sum(input_tokens) AS input_tokens, sum(cost_usd) AS cost_usd, sum(unpriced) AS unpriced "
    "FROM warden.usage_daily_by_value GROUP BY dimension, value, day ORDER BY dimension, value, day"
)
_WEEKLY = (
    "SELECT dimension, value, toString(week) AS at, sum(requests) AS requests, sum(cost_usd) AS cost_usd "
    "FROM warden.usage_weekly GROUP BY dimension, value, week ORDER BY dimension, value, week"
)
# The same from the daily rollup ordered by time, which 010 does not touch.
_DAILY_SOURCE = _DAILY.replace("warden.usage_daily_by_value", "warden.usage_daily")
_WEEKLY_SOURCE = (
    "SELECT dimension, value, toString(toDateTime(toMonday(day), 'UTC')) AS at, sum(requests) AS requests, "
    "sum(cost_usd) AS cost_usd FROM warden.usage_daily GROUP BY dimension, value, at ORDER BY dimension, value, at"
)


async def upgrade_to_010(store: Store, seed: int, count: int) -> dict[str, Any]:
    from plumbing.store.migrations import _LEDGER, migrate, migration_files, statements
    from services.console import usage
    from services.logger.rows import interaction_rows

    usage.EXACT_ROWS = 0  # the bounds, which 010 rebuilds, are what is compared
    await store.execute("CREATE DATABASE IF NOT EXISTS warden")
    await store.execute(_LEDGER)
    scripts = {version: script for version, _, script in migration_files()}
    for version, name, script in migration_files():
        if version < 10:
            for statement in statements(script):
                await store.execute(statement)
            await store.insert("warden.schema_migrations", [{"version": version, "name": name}])
    stored = events(seed, count)
    half = len(stored) // 2
    for start in range(0, half, 1000):
        await store.insert("warden.interactions", interaction_rows(stored[start : min(start + 1000, half)]))
    api = usage.UsageApi(store)

    async def state() -> dict[str, Any]:
        return {
            "daily": await store.select(_DAILY),
            "weekly": await store.select(_WEEKLY),
            "answers": [(await api.usage(params))["groups"] for params in windows(seed)],
        }

    before = await state()
    applied = await migrate(store)
    after = await state()
    for statement in statements(scripts[10]):  # the retry of a migration that failed part-way
        await store.execute(statement)
    again = await state()
    for start in range(half, len(stored), 1000):
        await store.insert("warden.interactions", interaction_rows(stored[start : min(start + 1000, len(stored))]))
    partitions = await store.select(
        "SELECT DISTINCT table, partition FROM system.parts WHERE database = 'warden' AND active "
        "AND table IN ('usage_daily_by_value', 'usage_weekly') ORDER BY table, partition"
    )
    return {
        "applied": applied,
        "before": before,
        "after": after,
        "again": again,
        "later": {"daily": await store.select(_DAILY), "weekly": await store.select(_WEEKLY)},
        "source": {"daily": await store.select(_DAILY_SOURCE), "weekly": await store.select(_WEEKLY_SOURCE)},
        "partitions": partitions,
    }


def _same(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert [(r["dimension"], r["value"], r["at"]) for r in got] == [(r["dimension"], r["value"], r["at"]) for r in want]
    for a, b in zip(got, want, strict=True):
        for key, value in a.items():
            if key not in ("dimension", "value", "at"):
                assert float(value) == pytest.approx(float(b[key]), rel=1e-9, abs=1e-12), (a, key)


@pytest.mark.parametrize("engine", ENGINES)
async def test_010_rebuilds_the_usage_copies_by_year_without_changing_an_answer(tmp_path, engine):
    if engine == "chdb":
        out = await run_on_chdb(tmp_path / "data", upgrade_to_010, seed=15, count=1500)
    else:
        server = new_clickhouse_server()  # a server of its own: the session's has every migration applied already
        await asyncio.to_thread(server.start)
        try:
            out = await run_on_server(server.url, upgrade_to_010, seed=15, count=1500)
        finally:
            await asyncio.to_thread(server.close)
    # 010 and every later migration (which 010's answers must survive too).
    assert out["applied"] == [name for version, name, _ in migration_files() if version >= 10]
    assert out["before"]["daily"] and out["before"]["weekly"]
    for state in ("after", "again"):
        _same(out[state]["daily"], out["before"]["daily"])
        _same(out[state]["weekly"], out["before"]["weekly"])
        for got, want in zip(out[state]["answers"], out["before"]["answers"], strict=True):
            assert [g["group"] for g in got] == [g["group"] for g in want]
            for a, b in zip(got, want, strict=True):
                assert [x["start"] for x in a["buckets"]] == [x["start"] for x in b["buckets"]]
                for x, y in zip(a["buckets"], b["buckets"], strict=True):
                    for m in MEASURES:
                        assert x[m] == pytest.approx(y[m], rel=1e-9, abs=1e-12), (a["group"], x["start"], m)
    # Recorded after the migration: in the rebuilt copies through their new views, as in the daily rollup.
    assert len(out["later"]["daily"]) > len(out["before"]["daily"])
    _same(out["later"]["daily"], out["source"]["daily"])
    _same(out["later"]["weekly"], out["source"]["weekly"])
    assert {p["partition"] for p in out["partitions"]} == {"2025"}
