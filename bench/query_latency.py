"""Read-side latency at scale: the logs viewer's queries on chDB with millions of interactions.

Generates N interactions directly in chDB with the real DDL (every migration in ``schemas/migrations``: the logger's
``warden.interactions`` and the read tables its materialized views fill), then times the read side the way the
console runs it: ``InteractionsApi.page`` / ``InteractionsApi.detail`` (the real query functions of
``services/console/queries.py``) through ``ChdbStore.select``.

    .venv/bin/python bench/query_latency.py --rows 1000000
    .venv/bin/python bench/query_latency.py --rows 10000000 --keep /tmp/warden-10m     # keep the data for a rerun
    .venv/bin/python bench/query_latency.py --reuse /tmp/warden-10m                    # time again, no generation

``--reuse`` first applies the migrations the directory does not have yet, as ``warden serve`` would: a directory
kept before a migration was added times that migration's backfill too (printed).

Distributions: ~2,000 agents (log-uniform ranks, so a few agents hold most rows: zipf-like), ~50,000 users (skewed,
milder), start times over the last 30 days, oldest inserted first (as the logger writes: ``in_time_order``),
60/25/15 % OpenAI/Anthropic/Gemini, ~3 % errors, 0.5 % blocked,
bodies of a few hundred bytes, a violation for 2 % of the interactions. Most interactions are inserted as one row
(what the logger writes when a request and its response share a batch); the newest ones as a request row and a later
response row, which the reads have to fold.

Query kinds (each timed ``--queries`` times with different, row-weighted random attribution):
- agent:        newest 50 of one agent_id
- user:         newest 50 of one user_id
- agent+user+7d newest 50 of one (agent_id, user_id) within the last 7 days
- detail:       one interaction by id, with its violations (two queries, as the API runs them)
- agent, errors / newest overall: a folded-column filter and the unfiltered first page (no target: for reference)
- agents seen / users seen: the viewer's filter choices (fewer runs: the viewer caches them)

Before timing, it waits for the background merges of freshly written data (``--settle-minutes``: they run in this
process and would be timed too; a table that grew to millions of rows over weeks is merged), and checks the first
page of a few picks against the record itself (``warden.interactions`` read with FINAL, as the console read it before
it had its own tables): timings of wrong answers would mean nothing.

Targets at 10 million rows: p95 < 50 ms for the lists, < 20 ms for the detail. The machine's load average is printed
with the figures: on a shared machine the p95 says as much about the neighbours as about the queries.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# bench/ is not a package: its scripts run as files and import their neighbour `common`.
from common import render_table, timestamp, write_results

from plumbing.store.base import Store
from plumbing.store.chdb_store import ChdbStore
from plumbing.store.migrations import migrate
from plumbing.store.server_store import ServerStore
from schemas.events import CATEGORIES, SEVERITIES
from services.console import queries
from services.console.api import InteractionsApi
from services.console.queries import InteractionFilter
from services.console.viewer import flags_sql, seen_values_sql

TARGET_LIST_P95_MS = 50.0
TARGET_DETAIL_P95_MS = 20.0
AGENTS = 2_000
USERS = 50_000
DAYS = 30
BATCH = 1_000_000
SPLIT_ROWS = 20_000
"""The newest interactions, written as a request row then a response row (unmerged parts the reads fold)."""

_U64 = "18446744073709551615.0"


def _uniform(salt: str) -> str:
    """A deterministic uniform [0, 1] per row number and salt, so a rerun generates the same data."""
    return f"(cityHash64(number, '{salt}') / {_U64})"


def in_time_order(first: int, count: int, begin_us: int, end_us: int) -> str:
    """Start times rising with the row number: rows ``first`` to ``first + count`` spread evenly over
    ``[begin_us, end_us)``, each at a hashed point of its own slot. Each insert of consecutive row numbers then covers
    a time window of its own, as each of the logger's batches does (it writes what the ingresses published, as it
    arrives: ``started_at`` is when the ingress received the request), so every part the inserts and their merges
    make covers a stretch of time, and ClickHouse can tell from a part's index alone whether it holds anything newer
    than what a newest-first read has found."""
    step = (end_us - begin_us) / count
    return (
        f"fromUnixTimestamp64Micro(toInt64({begin_us} + (number - {first}) * {step:.3f} "
        f"+ cityHash64(number, 'ts') % {max(1, int(step))}), 'UTC')"
    )


def _attribution(started_at: str) -> str:
    return f"""
        generateUUIDv4(number) AS interaction_id,
        {started_at} AS started_at,
        concat('agent-', toString(toUInt32(floor(exp(log({AGENTS}) * {_uniform("agent")}))))) AS agent_id,
        concat('user-', toString(toUInt32(floor({USERS} * pow({_uniform("user")}, 2))))) AS user_id,
        concat('session-', toString(cityHash64(number, 'session') % 500000)) AS session_id,
        multiIf({_uniform("profile")} < 0.8, 'default', concat('profile-', toString(cityHash64(number, 'p') % 20)))
            AS profile_id,
        multiIf({_uniform("provider")} < 0.6, 'openai', {_uniform("provider")} < 0.85, 'anthropic', 'gemini')
            AS provider,
        multiIf(provider = 'openai', ['gpt-4o', 'gpt-4o-mini', 'o3-mini'][1 + cityHash64(number, 'm') % 3],
                provider = 'anthropic', ['claude-sonnet-4-5', 'claude-haiku-4-5'][1 + cityHash64(number, 'm') % 2],
                ['gemini-2.5-flash', 'gemini-2.5-pro'][1 + cityHash64(number, 'm') % 2]) AS model"""


def _request_columns() -> str:
    return """
        if(provider = 'gemini', concat('/models/', model, ':generateContent'),
           if(provider = 'anthropic', '/messages', '/chat/completions')) AS route,
        toUInt8(cityHash64(number, 'stream') % 2) AS stream,
        concat('{"model":"', model, '","messages":[{"role":"system","content":"You are a helpful assistant."},',
               '{"role":"user","content":"Question ', toString(number), ': what is the status of ticket ',
               toString(cityHash64(number, 'ticket') % 100000), ' and who owns it?"}]}') AS request_received"""


def _response_columns() -> str:
    return f"""
        toUInt16(multiIf({_uniform("status")} < 0.97, 200, {_uniform("status")} < 0.98, 429,
                         {_uniform("status")} < 0.99, 500, 400)) AS status,
        started_at + toIntervalMillisecond(toUInt32(-800 * log(1 - {_uniform("latency")} * 0.999))) AS finished_at,
        toFloat64(-800 * log(1 - {_uniform("latency")} * 0.999)) AS latency_ms,
        toFloat64(50 + cityHash64(number, 'ttft') % 400) AS ttft_ms,
        toUInt32(20 + cityHash64(number, 'in') % 4000) AS input_tokens,
        toUInt32(5 + cityHash64(number, 'out') % 800) AS output_tokens,
        toUInt32(0) AS cached_tokens,
        'stop' AS finish_reason,
        concat('{{"id":"chatcmpl-', toString(number), '","object":"chat.completion","model":"', model,
               '","choices":[{{"index":0,"message":{{"role":"assistant","content":"Ticket ',
               toString(cityHash64(number, 'ticket') % 100000), ' is open and owned by the platform team. ',
               'The last update was two days ago."}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":',
               toString(input_tokens), ',"completion_tokens":', toString(output_tokens), '}}}}') AS response_body,
        toUInt8({_uniform("blocked")} < 0.005) AS blocked"""


_KEY = "interaction_id, started_at, agent_id, user_id, session_id, profile_id, provider, model"
_REQUEST = "route, stream, request_received"
_RESPONSE = (
    "status, finished_at, latency_ms, ttft_ms, input_tokens, output_tokens, cached_tokens, finish_reason, "
    "response_body, blocked"
)


def whole_rows_sql(start: int, count: int, started_at: str) -> str:
    return (
        f"INSERT INTO warden.interactions ({_KEY}, {_REQUEST}, {_RESPONSE}) "
        f"SELECT {_KEY}, {_REQUEST}, {_RESPONSE} FROM (SELECT {_attribution(started_at)}, {_request_columns()}, "
        f"{_response_columns()} FROM numbers({start}, {count}))"
    )


def split_rows_sql(start: int, count: int, started_at: str) -> tuple[str, str]:
    """The newest interactions as two inserts: request rows first, then response rows for the same ids."""
    # The ids must match across the two inserts, so they are derived from the row number, not random.
    ids = "toUUID(concat(lpad(hex(cityHash64(number, 'id1')), 16, '0'), lpad(hex(number), 16, '0')))"
    attribution = _attribution(started_at).replace("generateUUIDv4(number)", ids)
    source = f"FROM numbers({start}, {count})"
    request = (
        f"INSERT INTO warden.interactions ({_KEY}, {_REQUEST}, blocked) SELECT {_KEY}, {_REQUEST}, 0 "
        f"FROM (SELECT {attribution}, {_request_columns()} {source})"
    )
    response = (
        f"INSERT INTO warden.interactions ({_KEY}, {_RESPONSE}) SELECT {_KEY}, {_RESPONSE} "
        f"FROM (SELECT {attribution}, {_response_columns()} {source})"
    )
    return request, response


def violations_sql() -> str:
    """A violation for 2 % of the interactions (severity and category by hash), as the guard would record them."""
    # The rank is the severity's position in SEVERITIES, counted from 1, as SEVERITY_RANK has it.
    return f"""
        INSERT INTO warden.violations
        SELECT concat('v-', toString(interaction_id)) AS violation_id, interaction_id,
            started_at + toIntervalMillisecond(900) AS detected_at, 'bench' AS detector,
            {list(CATEGORIES)}[1 + cityHash64(interaction_id, 'c') % {len(CATEGORIES)}] AS category,
            {list(SEVERITIES)}[1 + cityHash64(interaction_id, 's') % {len(SEVERITIES)}] AS severity,
            toUInt8(1 + cityHash64(interaction_id, 's') % {len(SEVERITIES)}) AS severity_rank, 0.9 AS score,
            'logged' AS action,
            'request' AS location, 'an excerpt' AS excerpt, profile_id, agent_id, user_id
        FROM (SELECT DISTINCT interaction_id, started_at, profile_id, agent_id, user_id FROM warden.interactions
              WHERE cityHash64(interaction_id, 'violation') % 50 = 0)"""


async def generate(store: Store, rows: int) -> float:
    now_us = int(datetime.now(UTC).timestamp() * 1_000_000)
    hour_us = 3600 * 1_000_000
    began = time.perf_counter()
    whole = max(rows - SPLIT_ROWS, 0)
    # Oldest first, as the logger writes: the whole rows over the month up to an hour ago, then the last hour's.
    whole_times = in_time_order(0, max(whole, 1), now_us - DAYS * 86_400 * 1_000_000, now_us - hour_us)
    for start in range(0, whole, BATCH):
        await store.execute(whole_rows_sql(start, min(BATCH, whole - start), whole_times))
        print(f"  inserted {min(start + BATCH, whole):,} rows", flush=True)
    request, response = split_rows_sql(
        whole, rows - whole, in_time_order(whole, rows - whole, now_us - hour_us, now_us)
    )
    await store.execute(request)
    await store.execute(response)
    await store.execute(violations_sql())
    return time.perf_counter() - began


LIST_COPIES = ("interactions_by_agent", "interactions_by_user", "interactions_by_time")


async def time_order_copies(store: Store, slice_hours: int = 24, tables: tuple[str, ...] = LIST_COPIES) -> float:
    """Rewrite the list copies oldest first, one insert per ``slice_hours`` of start times: the layout the logger's
    inserts give them (see ``in_time_order``), for a directory generated before the generator wrote in time order.
    The rows stay exactly what they were (copied as stored, unfolded halves included): only which part holds which
    row changes (``optimize_on_insert = 0``: an insert would otherwise fold the halves it holds together, as a merge
    does). The parts move aside first (ATTACH PARTITION ... FROM: hard links, no copy)."""
    began = time.perf_counter()
    for table in tables:
        aside = f"warden.{table}_aside"
        await store.execute(f"DROP TABLE IF EXISTS {aside}")
        await store.execute(f"CREATE TABLE {aside} AS warden.{table}")
        partitions = await store.select(
            "SELECT DISTINCT partition_id FROM system.parts WHERE database = 'warden' AND table = {t:String} "
            "AND active",
            {"t": table},
        )
        for p in partitions:
            await store.execute(f"ALTER TABLE {aside} ATTACH PARTITION ID '{p['partition_id']}' FROM warden.{table}")
        await store.execute(f"TRUNCATE TABLE warden.{table}")
        (span,) = await store.select(
            f"SELECT toUnixTimestamp(min(started_at)) AS lo, toUnixTimestamp(max(started_at)) + 1 AS hi FROM {aside}"
        )
        for lo in range(span["lo"], span["hi"], slice_hours * 3600):
            await store.execute(
                f"INSERT INTO warden.{table} SELECT * FROM {aside} WHERE started_at >= toDateTime64({lo}, 6, 'UTC') "
                f"AND started_at < toDateTime64({lo + slice_hours * 3600}, 6, 'UTC') SETTINGS optimize_on_insert = 0"
            )
        (moved,) = await store.select(
            f"SELECT (SELECT count() FROM warden.{table}) AS copied, (SELECT count() FROM {aside}) AS was"
        )
        if moved["copied"] != moved["was"]:
            raise SystemExit(f"{table}: {moved['copied']} rows rewritten of {moved['was']}")
        await store.execute(f"DROP TABLE {aside}")
        print(f"  {table}: {moved['copied']:,} rows rewritten oldest first", flush=True)
    return time.perf_counter() - began


@dataclass
class Timing:
    name: str
    samples_ms: list[float]
    rows: list[int]
    target_ms: float | None
    cpu_ms: list[float]
    """CPU time of the engine per query (chDB: this process; server: the server's process): steadier than the
    latency on a shared machine, where the latency mostly measures the neighbours."""

    def p(self, q: float) -> float:
        ordered = sorted(self.samples_ms)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    def row(self) -> list[str]:
        target = "" if self.target_ms is None else f"{self.target_ms:.0f}"
        verdict = "" if self.target_ms is None else ("ok" if self.p(0.95) < self.target_ms else "MISSED")
        return [
            self.name,
            str(len(self.samples_ms)),
            f"{self.p(0.5):.1f}",
            f"{self.p(0.95):.1f}",
            f"{max(self.samples_ms):.1f}",
            f"{statistics.median(self.cpu_ms):.1f}",
            f"{statistics.mean(self.rows):.0f}",
            target,
            verdict,
        ]


BUDGET_S = 120.0
"""Time spent on one query kind before it stops early (after at least MIN_RUNS): a kind taking seconds per query is
far enough off target that more runs would only make the benchmark take hours."""
MIN_RUNS = 20


async def timed(
    name: str, runs: list[Callable[[], Awaitable[int]]], target_ms: float | None, warmup: int = 5
) -> Timing:
    for run in runs[:warmup]:
        await run()
    samples, counts, cpu = [], [], []
    deadline = time.monotonic() + BUDGET_S
    for run in runs:
        began, began_cpu = time.perf_counter(), engine_cpu_ms()
        counts.append(await run())
        samples.append((time.perf_counter() - began) * 1000)
        cpu.append(engine_cpu_ms() - began_cpu)
        if len(samples) >= MIN_RUNS and time.monotonic() > deadline:
            break
    timing = Timing(name, samples, counts, target_ms, cpu)
    print(f"  {name}: p95 {timing.p(0.95):.1f} ms, CPU p50 {statistics.median(cpu):.1f} ms", flush=True)
    return timing


ENGINE_PID: int | None = None
"""The ClickHouse server's process while it is timed; None: chDB, in this process."""


def engine_cpu_ms() -> float:
    """CPU time (user + system) used so far by the engine's process, in ms."""
    if ENGINE_PID is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return (usage.ru_utime + usage.ru_stime) * 1000
    fields = Path(f"/proc/{ENGINE_PID}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


async def sample(store: Store, n: int, seed: int) -> list[dict[str, Any]]:
    """Attribution of n random rows: row-weighted, so busy agents and users are picked as often as they are busy."""
    sql = (
        "SELECT toString(interaction_id) AS interaction_id, agent_id, user_id FROM warden.interactions "
        "WHERE cityHash64(interaction_id, {seed:UInt32}) % 1000 = 0 LIMIT {n:UInt32}"
    )
    rows = await store.select(sql, {"seed": seed, "n": n * 20})
    random.Random(seed).shuffle(rows)
    return rows[:n]


async def explain(store: Store, sql: str, params: dict[str, Any]) -> str:
    """The index lines of EXPLAIN: which parts and granules the primary key (and any skip index) kept."""
    rows = await store.select(f"EXPLAIN indexes = 1 {sql}", params)
    lines = [r["explain"].replace("│", " ") for r in rows]
    keep = [line.strip() for line in lines if any(k in line for k in ("Name:", "Granules:", "Parts:", "Type:"))]
    return " | ".join(keep)


async def check_against_record(api: InteractionsApi, store: Store, picks: list[dict[str, Any]]) -> None:
    """The first page of each list kind, and the detail, must be what the record says: ``warden.interactions``
    folded with FINAL and filtered on the folded rows."""
    week_ago = datetime.now(UTC) - timedelta(days=7)
    for p in picks:
        for f, where, params in (
            (InteractionFilter(agent_id=p["agent_id"]), "agent_id = {a:String}", {"a": p["agent_id"]}),
            (InteractionFilter(user_id=p["user_id"]), "user_id = {u:String}", {"u": p["user_id"]}),
            (
                InteractionFilter(agent_id=p["agent_id"], status="error"),
                "agent_id = {a:String} AND (status >= 400 OR error IS NOT NULL)",
                {"a": p["agent_id"]},
            ),
            (
                InteractionFilter(agent_id=p["agent_id"], user_id=p["user_id"], since=week_ago),
                "agent_id = {a:String} AND user_id = {u:String} AND started_at >= {s:DateTime64(6, 'UTC')}",
                {"a": p["agent_id"], "u": p["user_id"], "s": week_ago.strftime("%Y-%m-%d %H:%M:%S.%f")},
            ),
        ):
            record = await store.select(
                "SELECT toString(interaction_id) AS id, status, blocked FROM warden.interactions FINAL "
                f"WHERE {where} ORDER BY started_at DESC, interaction_id DESC LIMIT 50",
                params,
            )
            items = (await api.page(f))["items"]
            got = [(i["interaction_id"], i["status"], i["blocked"]) for i in items]
            if got != [(r["id"], r["status"], bool(r["blocked"])) for r in record]:
                raise SystemExit(f"the read tables disagree with warden.interactions for {f}")
        detail = await api.detail(p["interaction_id"])
        (record,) = await store.select(
            "SELECT request_received, response_body, status FROM warden.interactions FINAL "
            "WHERE interaction_id = {id:UUID}",
            {"id": p["interaction_id"]},
        )
        if detail is None or any(detail[k] != v for k, v in record.items()):
            raise SystemExit(f"the detail of {p['interaction_id']} disagrees with warden.interactions")
    for f, where in (
        (InteractionFilter(), "1"),
        (InteractionFilter(status="error"), "status >= 400 OR error IS NOT NULL"),
    ):
        items = (await api.page(f))["items"]
        # The record's newest, folded with FINAL only from the oldest listed time on (FINAL over everything takes
        # minutes): anything newer the list missed, or older it listed instead, is in that range.
        record = await store.select(
            "SELECT toString(interaction_id) AS id FROM warden.interactions FINAL "
            "WHERE started_at >= {s:DateTime64(6, 'UTC')} AND (" + where + ") "
            "ORDER BY started_at DESC, interaction_id DESC LIMIT 50",
            # The API shows times in ISO 8601 with their zone; the parameter takes the stored form.
            {"s": items[-1]["started_at"].removesuffix("Z").replace("T", " ")},
        )
        if [i["interaction_id"] for i in items] != [r["id"] for r in record]:
            raise SystemExit(f"the newest interactions disagree with warden.interactions for {f}")
    for column in ("agent_id", "user_id"):
        suggested = [row["value"] for row in await store.select(seen_values_sql(column))]
        record = await store.select(
            f"SELECT {column} AS value, max(started_at) AS last FROM warden.interactions "
            f"WHERE started_at >= now64(6) - INTERVAL 7 DAY AND {column} != '' GROUP BY {column} "
            "ORDER BY last DESC LIMIT 100"
        )
        if suggested[:100] != [row["value"] for row in record]:
            raise SystemExit(f"the {column} suggestions disagree with warden.interactions")


async def measure(store: Store, n_queries: int) -> tuple[list[Timing], dict[str, str]]:
    api = InteractionsApi(store)
    picks = await sample(store, n_queries, 7)
    week_ago = datetime.now(UTC) - timedelta(days=7)

    def listing(f: InteractionFilter) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            return len((await api.page(f))["items"])

        return run

    def detail(interaction_id: str) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            item = await api.detail(interaction_id)
            return 0 if item is None else 1 + len(item["violations"])

        return run

    pages = {
        p["agent_id"]: [
            i["interaction_id"] for i in (await api.page(InteractionFilter(agent_id=p["agent_id"])))["items"]
        ]
        for p in picks[:50]
    }

    def flags(agent: str) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            return len(await store.select(*flags_sql(pages[agent])))

        return run

    def seen(column: str) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            return len(await store.select(seen_values_sql(column)))

        return run

    began = time.perf_counter()
    await check_against_record(api, store, picks[:3])
    print(f"  answers checked against warden.interactions FINAL in {time.perf_counter() - began:.0f} s", flush=True)
    timings = [
        await timed(
            "agent newest 50", [listing(InteractionFilter(agent_id=p["agent_id"])) for p in picks], TARGET_LIST_P95_MS
        ),
        await timed(
            "user newest 50", [listing(InteractionFilter(user_id=p["user_id"])) for p in picks], TARGET_LIST_P95_MS
        ),
        await timed(
            "agent+user, 7 days",
            [listing(InteractionFilter(agent_id=p["agent_id"], user_id=p["user_id"], since=week_ago)) for p in picks],
            TARGET_LIST_P95_MS,
        ),
        await timed("detail by id", [detail(p["interaction_id"]) for p in picks], TARGET_DETAIL_P95_MS),
        await timed(
            "agent, status=error",
            [listing(InteractionFilter(agent_id=p["agent_id"], status="error")) for p in picks],
            TARGET_LIST_P95_MS,
        ),
        await timed("newest 50, no filter", [listing(InteractionFilter())] * 50, TARGET_LIST_P95_MS, warmup=2),
        await timed(
            "newest 50, status=error", [listing(InteractionFilter(status="error"))] * 50, TARGET_LIST_P95_MS, warmup=2
        ),
        await timed("newest 50, provider", [listing(InteractionFilter(provider="gemini"))] * 50, TARGET_LIST_P95_MS),
        await timed("page's violation flags", [flags(p["agent_id"]) for p in picks[:50]], TARGET_LIST_P95_MS),
        await timed("agents seen", [seen("agent_id")] * 50, TARGET_LIST_P95_MS, warmup=2),
        await timed("users seen", [seen("user_id")] * 50, TARGET_LIST_P95_MS, warmup=2),
    ]
    p = picks[0]
    agent_plan = queries.plan_list(InteractionFilter(agent_id=p["agent_id"]))
    user_plan = queries.plan_list(InteractionFilter(user_id=p["user_id"]))
    plans = {
        "agent list": await explain(
            store, *queries.list_round(agent_plan, None, agent_plan.first_round, agent_plan.floor(0))
        ),
        "user list": await explain(store, *queries.list_round(user_plan, None, user_plan.first_round)),
        "detail": await explain(store, *queries.get_interaction(p["interaction_id"])),
    }
    return timings, plans


async def settle(store: Store, max_wait_s: float) -> float:
    """Wait for the background merges of freshly written data: a table that grew to millions of rows over weeks is
    merged, and merges running beside the timed queries would be timed too (they run in this process)."""
    began = time.perf_counter()
    while time.perf_counter() - began < max_wait_s:
        (row,) = await store.select("SELECT count() AS n FROM system.merges WHERE database = 'warden'")
        if row["n"] == 0:
            break
        await asyncio.sleep(2)
    waited = time.perf_counter() - began
    if waited > 1:
        print(f"waited {waited:.0f} s for background merges", flush=True)
    return waited


async def table_facts(store: Store) -> dict[str, Any]:
    tables = await store.select(
        "SELECT table, count() AS parts, sum(rows) AS rows, sum(data_compressed_bytes) AS compressed_bytes "
        "FROM system.parts WHERE database = 'warden' AND active AND table LIKE 'interactions%' "
        "GROUP BY table ORDER BY table"
    )
    (distinct,) = await store.select(
        "SELECT uniqExact(agent_id) AS agents, uniqExact(user_id) AS users, "
        "(SELECT count() FROM warden.violations) AS violations FROM warden.interactions"
    )
    return {"tables": {t.pop("table"): t for t in tables}, **distinct}


async def run_on(store: Store, label: str, args: argparse.Namespace, generate_rows: bool) -> dict[str, Any]:
    """Migrate, generate (unless reused), settle and time one store; prints its table and returns its figures."""
    began = time.perf_counter()
    applied = await migrate(store)
    migration_s = time.perf_counter() - began
    if applied:
        print(f"[{label}] migrations applied: {', '.join(applied)} in {migration_s:.0f} s", flush=True)
    generation_s = None
    if getattr(args, "time_order_copies", False) and label == "chDB":
        print(f"[{label}] rewriting the list copies oldest first ...", flush=True)
        print(f"  done in {await time_order_copies(store):.0f} s", flush=True)
    if generate_rows:
        print(f"[{label}] generating {args.rows:,} interactions ...", flush=True)
        generation_s = await generate(store, args.rows)
        print(f"  done in {generation_s:.0f} s", flush=True)
    settle_s = await settle(store, args.settle_minutes * 60)
    facts = await table_facts(store)
    for table, t in facts["tables"].items():
        print(f"{table}: {t['rows']:,} rows in {t['parts']} parts, {t['compressed_bytes'] / 1e6:.0f} MB compressed")
    print(f"{facts['agents']:,} agents, {facts['users']:,} users, {facts['violations']:,} violations", flush=True)
    load_before = os.getloadavg()
    timings, plans = await measure(store, args.queries)
    load_after = os.getloadavg()

    headers = ["query", "runs", "p50 ms", "p95 ms", "max ms", "CPU p50 ms", "rows", "target p95", ""]
    print(f"\n[{label}]")
    print(render_table(headers, [t.row() for t in timings]))
    print()
    for name, plan in plans.items():
        print(f"plan {name}: {plan}")
    # A shared machine skews every figure: the load average says how much else was running.
    print(
        f"load average (1/5/15 min) before timing: {' / '.join(f'{x:.1f}' for x in load_before)}, after: "
        f"{' / '.join(f'{x:.1f}' for x in load_after)} on {os.cpu_count()} CPUs"
    )
    return {
        "rows": facts["tables"].get("interactions", {}).get("rows"),
        "migrations_applied": applied,
        "migration_s": migration_s,
        "generation_s": generation_s,
        "settle_s": settle_s,
        "table": facts,
        "timings": {
            t.name: {
                "p50_ms": t.p(0.5),
                "p95_ms": t.p(0.95),
                "max_ms": max(t.samples_ms),
                "cpu_p50_ms": statistics.median(t.cpu_ms),
                "runs": len(t.samples_ms),
                "target_ms": t.target_ms,
            }
            for t in timings
        },
        "plans": plans,
        "load_average": {"before": load_before, "after": load_after},
        "cpus": os.cpu_count(),
    }


@contextlib.contextmanager
def served(data_dir: Path) -> Iterator[tuple[str, int | None]]:
    """A ClickHouse server (the chdb wheel's clickhouse-local in server mode, as the tests start it) on ``data_dir``:
    chDB writes the server's own format, so the generated data is timed again without generating it twice. The
    server's working directory sits beside the data, which it sees through a symbolic link. Yields its URL."""
    from tests.support.clickhouse_server import ClickHouseServer

    workdir = data_dir.parent / f"{data_dir.name}-server"
    workdir.mkdir(exist_ok=True)
    link = workdir / "data"
    if not link.exists():
        link.symlink_to(data_dir.resolve(), target_is_directory=True)
    server = ClickHouseServer(workdir=workdir, start_timeout=600)
    server.start()
    try:
        yield server.url, server.pid
    finally:
        server.stop(timeout=120)


def missed(figures: dict[str, Any]) -> list[str]:
    return [
        name for name, t in figures["timings"].items() if t["target_ms"] is not None and t["p95_ms"] >= t["target_ms"]
    ]


async def main(args: argparse.Namespace) -> int:
    global ENGINE_PID
    results: dict[str, Any] = {}
    if args.clickhouse_url:
        store: Store = ServerStore(args.clickhouse_url)
        try:
            results["server"] = await run_on(store, "ClickHouse server", args, generate_rows=not args.reuse)
        finally:
            await store.close()
    else:
        if args.reuse:
            data_dir, owned = Path(args.reuse), False
        elif args.keep:
            data_dir, owned = Path(args.keep), False
            data_dir.mkdir(parents=True, exist_ok=True)
        else:
            data_dir, owned = Path(tempfile.mkdtemp(prefix="warden-bench-")), True
        try:
            store = ChdbStore(data_dir)
            try:
                results["chdb"] = await run_on(store, "chDB", args, generate_rows=not args.reuse)
            finally:
                await store.close()
            if args.server:
                # The same directory served by a ClickHouse server: chDB's files are the server's (same engine).
                with served(data_dir) as (url, ENGINE_PID):
                    store = ServerStore(url)
                    try:
                        results["server"] = await run_on(store, "ClickHouse server", args, generate_rows=False)
                    finally:
                        await store.close()
        finally:
            if owned:
                shutil.rmtree(data_dir, ignore_errors=True)
                shutil.rmtree(data_dir.parent / f"{data_dir.name}-server", ignore_errors=True)

    path = write_results("query_latency", timestamp(), results)
    print(f"\nresults: {path}")
    return 1 if any(missed(figures) for figures in results.values()) else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="interactions to generate (1000000, 10000000)")
    parser.add_argument("--queries", type=int, default=200, help="timed queries of each kind")
    parser.add_argument(
        "--settle-minutes", type=float, default=15.0, help="longest wait for background merges before timing"
    )
    parser.add_argument("--keep", help="generate into this directory and keep it")
    parser.add_argument(
        "--reuse",
        nargs="?",
        const="server",
        help="time the data already in this directory (from --keep) or server (--clickhouse-url): no generation",
    )
    parser.add_argument(
        "--server",
        action="store_true",
        help="after chDB, time the same directory served by a ClickHouse server (the chdb wheel's, started here)",
    )
    parser.add_argument(
        "--time-order-copies",
        action="store_true",
        help="first rewrite the list copies of a --reuse directory oldest first (one written before the generator "
        "inserted in time order): the parts then cover stretches of time, as the logger's do",
    )
    parser.add_argument(
        "--clickhouse-url", help="time a running ClickHouse server instead of chDB (http://user:password@host:port)"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
