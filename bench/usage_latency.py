"""Latency of ``GET /api/usage`` at scale: the usage API's query on chDB with millions of interactions.

Generates N finished interactions in ``warden.interactions`` with the real DDL (every migration), the attribution
distributions of ``bench/query_latency.py`` (~2,000 agents zipf-like, ~50,000 skewed users, 30 days, three providers
and their models) and a cost per answer, so the rollup ``warden.usage_hourly`` is filled the way the store fills it:
by its materialized view, insert by insert. The read tables' views are dropped first: they take no part in the usage
query and would only make generating the data slower. Then times ``UsageApi.usage`` (the real query) through
``ChdbStore.select`` for every ``group_by`` over the last day (per hour), the last 7 days (per day, the default) and
the 30 days (per day), and checks one answer against the record (``warden.interactions`` read with FINAL). Through a
server (``--server``) each call's CPU is also read from the server's own counters (``system.events``).

    .venv/bin/python bench/usage_latency.py --rows 10000000 --keep /tmp/warden-usage-10m
    .venv/bin/python bench/usage_latency.py --reuse /tmp/warden-usage-10m

Target: p95 < 100 ms at 10 million interactions. The machine's load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import query_latency
from common import render_table, timestamp, write_results
from query_latency import _KEY, BATCH, DAYS, Timing, _attribution, _uniform, in_time_order, served, settle, timed

from plumbing.store.base import Store
from plumbing.store.chdb_store import ChdbStore
from plumbing.store.migrations import migrate
from plumbing.store.server_store import ServerStore
from services.console.usage import GROUP_BY, UsageApi

TARGET_P95_MS = 100.0
_READ_VIEWS = (
    "interactions_by_agent_mv",
    "interactions_by_user_mv",
    "interactions_by_time_mv",
    "interactions_by_id_mv",
)
_COLUMNS = (
    "status, input_tokens, output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, cost_usd, cost_estimated"
)


def rows_sql(start: int, count: int, started_at: str) -> str:
    """Finished interactions as the logger writes them when both halves share a batch (bodies left out: the rollup
    does not read them), oldest first (``in_time_order``). Unpriced models (2 %) have no cost; 5 % of the answers are
    estimated."""
    return f"""
        INSERT INTO warden.interactions ({_KEY}, {_COLUMNS})
        SELECT {_KEY}, {_COLUMNS} FROM (
            SELECT {_attribution(started_at)},
                toUInt16(multiIf({_uniform("status")} < 0.97, 200, {_uniform("status")} < 0.98, 429, 500)) AS status,
                toUInt32(20 + cityHash64(number, 'in') % 4000) AS input_tokens,
                toUInt32(5 + cityHash64(number, 'out') % 800) AS output_tokens,
                toUInt32(cityHash64(number, 'cached') % 1000) AS cached_tokens,
                toUInt32(cityHash64(number, 'write') % 100) AS cache_write_tokens,
                toUInt32(cityHash64(number, 'reasoning') % 200) AS reasoning_tokens,
                if({_uniform("priced")} < 0.98, input_tokens * 2.5e-6 + output_tokens * 1e-5, NULL) AS cost_usd,
                toUInt8({_uniform("estimated")} < 0.05) AS cost_estimated
            FROM numbers({start}, {count}))"""


async def generate(store: Store, rows: int) -> float:
    for view in _READ_VIEWS:
        await store.execute(f"DROP VIEW IF EXISTS warden.{view}")
    now_us = int(datetime.now(UTC).timestamp() * 1_000_000)
    started_at = in_time_order(0, max(rows, 1), now_us - DAYS * 86_400 * 1_000_000, now_us)
    began = time.perf_counter()
    for start in range(0, rows, BATCH):
        await store.execute(rows_sql(start, min(BATCH, rows - start), started_at))
        print(f"  inserted {min(start + BATCH, rows):,} rows ({time.perf_counter() - began:.0f} s)", flush=True)
    return time.perf_counter() - began


async def check_against_record(api: UsageApi, store: Store) -> None:
    """One answer (every model over the 30 days) against the record itself."""
    until = datetime.now(UTC)
    since = until - timedelta(days=DAYS + 1)
    answer = await api.usage({"group_by": "model", "since": since.isoformat(), "until": until.isoformat()})
    got = {g["group"]: (g["totals"]["requests"], g["totals"]["cost_usd"]) for g in answer["groups"]}
    record = await store.select(
        "SELECT model, count() AS requests, sum(ifNull(cost_usd, 0)) AS cost FROM warden.interactions "
        "FINAL WHERE status IS NOT NULL GROUP BY model"
    )
    want = {r["model"]: (int(r["requests"]), float(r["cost"])) for r in record}
    # Sums of floats in another order differ in the last digits.
    if got.keys() != want.keys() or any(
        got[m][0] != want[m][0] or not math.isclose(got[m][1], want[m][1], rel_tol=1e-9) for m in got
    ):
        raise SystemExit(f"the usage API disagrees with the record:\n{got}\n{want}")
    print("  answer checked against warden.interactions FINAL", flush=True)


async def measure(store: Store, queries: int) -> tuple[list[Timing], dict[str, dict[str, str]]]:
    """Times every cell; returns the timings and each cell's question."""
    api = UsageApi(store)
    await check_against_record(api, store)
    now = datetime.now(UTC)
    ranges = {
        "1 day per hour": (now - timedelta(days=1), "hour"),
        "7 days per day": (now - timedelta(days=7), "day"),
        "30 days per day": (now - timedelta(days=30), "day"),
    }
    timings, cells = [], {}
    for group_by in GROUP_BY:
        for label, (since, interval) in ranges.items():
            params = {"group_by": group_by, "since": since.isoformat(), "until": now.isoformat(), "interval": interval}

            async def run(params: dict[str, str] = params) -> int:
                return len((await api.usage(params))["groups"])

            timings.append(await timed(f"{group_by}, {label}", [run] * queries, TARGET_P95_MS))
            cells[timings[-1].name] = params
    return timings, cells


_SERVER_CPU = (
    "SELECT sumIf(value, event IN ('UserTimeMicroseconds', 'SystemTimeMicroseconds')) AS us FROM system.events"
)


async def server_cpu(store: Store, cells: dict[str, dict[str, str]], runs: int) -> dict[str, list[float]]:
    """The server's own account of each call's CPU, finer than its process's clock ticks: its ProfileEvents counters
    (user + system time of every thread working for a query, in µs), read before and after the call, in a pass of
    its own so that the reads are not timed with the calls. The reads' own share (well under a millisecond) is in it.
    Not ``system.query_log``: the server the chdb wheel runs has none."""
    api = UsageApi(store)
    out = {}
    for name, params in cells.items():
        cpu = []
        for _ in range(runs):
            (before,) = await store.select(_SERVER_CPU)
            await api.usage(params)
            (after,) = await store.select(_SERVER_CPU)
            cpu.append((int(after["us"]) - int(before["us"])) / 1000)
        out[name] = cpu
    return out


async def merge_rollups(store: Store) -> float:
    """Merge every usage rollup to one part per partition: a store that has run for weeks has its parts merged, while
    a directory just generated or migrated has the parts of its last inserts, which every query reads apiece (and the
    merges the settle step does not wait for run beside the timing, in this process)."""
    began = time.perf_counter()
    tables = await store.select(
        "SELECT name FROM system.tables WHERE database = 'warden' AND name LIKE 'usage%' AND engine LIKE '%MergeTree'"
    )
    for table in tables:
        await store.execute(f"OPTIMIZE TABLE warden.{table['name']} FINAL")
    return time.perf_counter() - began


async def run_on(store: Store, label: str, args: argparse.Namespace, generate_rows: bool) -> dict[str, Any]:
    """Migrate (a directory kept before a migration gets it now, timed), generate unless reused, settle, time."""
    began = time.perf_counter()
    applied = await migrate(store)
    migration_s = time.perf_counter() - began
    if applied:
        print(f"[{label}] migrations applied: {', '.join(applied)} in {migration_s:.0f} s", flush=True)
    generation_s = None
    if generate_rows:
        print(f"[{label}] generating {args.rows:,} interactions ...", flush=True)
        generation_s = await generate(store, args.rows)
    await settle(store, args.settle_minutes * 60)
    if args.optimize:
        print(f"[{label}] merged the usage rollups in {await merge_rollups(store):.0f} s", flush=True)
    (facts,) = await store.select(
        "SELECT (SELECT count() FROM warden.interactions) AS interactions, "
        "(SELECT sum(rows) FROM system.parts WHERE database = 'warden' AND table = 'usage_hourly' AND active) "
        "AS rollup_rows"
    )
    print(f"{int(facts['interactions']):,} interactions, {int(facts['rollup_rows']):,} rollup rows", flush=True)
    load_before = os.getloadavg()
    timings, cells = await measure(store, args.queries)
    load_after = os.getloadavg()
    logged = await server_cpu(store, cells, args.queries) if query_latency.ENGINE_PID is not None else {}
    headers = ["query", "runs", "p50 ms", "p95 ms", "max ms", "CPU p50 ms", "groups", "target p95", ""]
    rows = [t.row() for t in timings]
    if logged:
        headers.insert(6, "events CPU p50 / p95 ms")
        for row, t in zip(rows, timings, strict=True):
            cpu = sorted(logged[t.name])
            row.insert(6, f"{statistics.median(cpu):.1f} / {cpu[min(len(cpu) - 1, round(0.95 * (len(cpu) - 1)))]:.1f}")
    print(f"\n[{label}]")
    print(render_table(headers, rows))
    print(
        f"load average (1/5/15 min) before timing: {' / '.join(f'{x:.1f}' for x in load_before)}, after: "
        f"{' / '.join(f'{x:.1f}' for x in load_after)} on {os.cpu_count()} CPUs"
    )
    return {
        "interactions": int(facts["interactions"]),
        "rollup_rows": int(facts["rollup_rows"]),
        "migrations_applied": applied,
        "migration_s": migration_s,
        "generation_s": generation_s,
        "timings": {
            t.name: {
                "p50_ms": t.p(0.5),
                "p95_ms": t.p(0.95),
                "cpu_p50_ms": statistics.median(t.cpu_ms),
                "runs": len(t.samples_ms),
                **({"server_events_cpu_ms": logged[t.name]} if logged else {}),
            }
            for t in timings
        },
        "load_average": {"before": load_before, "after": load_after},
    }


async def main(args: argparse.Namespace) -> int:
    data_dir = Path(args.reuse or args.keep or tempfile.mkdtemp(prefix="warden-usage-"))
    results: dict[str, Any] = {}
    try:
        store: Store = ChdbStore(str(data_dir))
        try:
            results["chdb"] = await run_on(store, "chDB", args, generate_rows=not args.reuse)
        finally:
            await store.close()
        if args.server:
            # The same directory served by a ClickHouse server: chDB's files are the server's (same engine).
            with served(data_dir) as (url, query_latency.ENGINE_PID):
                store = ServerStore(url)
                try:
                    results["server"] = await run_on(store, "ClickHouse server", args, generate_rows=False)
                finally:
                    await store.close()
    finally:
        if not (args.keep or args.reuse):
            shutil.rmtree(data_dir, ignore_errors=True)
            shutil.rmtree(data_dir.parent / f"{data_dir.name}-server", ignore_errors=True)
    print(f"results: {write_results('usage_latency', timestamp(), results)}")
    return 0 if all(t["p95_ms"] < TARGET_P95_MS for r in results.values() for t in r["timings"].values()) else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--queries", type=int, default=50, help="timed runs per query kind")
    parser.add_argument("--keep", help="generate into this directory and keep it")
    parser.add_argument("--reuse", help="time a directory generated before (no generation)")
    parser.add_argument("--settle-minutes", type=float, default=10.0)
    parser.add_argument(
        "--optimize", action="store_true", help="merge the usage rollups to one part per partition before timing"
    )
    parser.add_argument(
        "--server",
        action="store_true",
        help="after chDB, time the same directory served by a ClickHouse server (the chdb wheel's, started here)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
