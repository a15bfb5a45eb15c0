"""Read-side latency at scale: the logs viewer's queries on chDB with millions of interactions.

Generates N interactions directly in chDB with the real DDL (the migrations in ``schemas/migrations``, or a copy of
them given with ``--ddl`` to compare a change), then times the read side the way the console runs it: the real query
functions of ``services/console/queries.py`` through ``InteractionsApi`` and ``ChdbStore.select``.

    .venv/bin/python bench/query_latency.py --rows 1000000
    .venv/bin/python bench/query_latency.py --rows 10000000 --keep /tmp/warden-10m     # keep the data for a rerun
    .venv/bin/python bench/query_latency.py --reuse /tmp/warden-10m                    # time again, no generation
    .venv/bin/python bench/query_latency.py --rows 10000000 --ddl /tmp/variant.sql     # a DDL file instead
    .venv/bin/python bench/query_latency.py --rows 10000000 --variant                  # the proposed DDL below

Distributions: ~2,000 agents (log-uniform ranks, so a few agents hold most rows: zipf-like), ~50,000 users (skewed,
milder), start times uniform over the last 30 days, 60/25/15 % OpenAI/Anthropic/Gemini, ~3 % errors, 0.5 % blocked,
bodies of a few hundred bytes. Most interactions are inserted as one row (what the logger writes when a request and
its response share a batch); the newest ones as a request row and a later response row, which FINAL has to fold.

Query kinds (each timed ``--queries`` times with different, row-weighted random attribution):
- agent:        newest 50 of one agent_id
- user:         newest 50 of one user_id
- agent+user+7d newest 50 of one (agent_id, user_id) within the last 7 days
- detail:       one interaction by id, with its violations (two queries, as the API runs them)
- agents seen / users seen: the viewer's filter choices (fewer runs: the viewer caches them)

Each kind is also timed as *proposed* (``two-phase``): the newest keys ``(agent_id, started_at, interaction_id)`` are
found without FINAL — the key columns are identical in an interaction's request and response rows, so unfolded rows
give the right keys — and only those rows are read with FINAL, through the primary key. The detail likewise finds the
key of the id first. With ``--variant`` the table is built from ``VARIANT_DDL`` (a copy of the migration with the
proposed changes) and the proposed user list reads its keys from the ``interactions_by_user`` table.

Targets at 10 million rows: p95 < 50 ms for the lists, < 20 ms for the detail.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# bench/ is not a package: its scripts run as files and import their neighbour `common`.
from common import render_table, timestamp, write_results

from plumbing.store.chdb_store import ChdbStore
from plumbing.store.migrations import migrate, statements
from services.console import queries
from services.console.api import InteractionsApi
from services.console.queries import InteractionFilter
from services.console.viewer import seen_values_sql

TARGET_LIST_P95_MS = 50.0
TARGET_DETAIL_P95_MS = 20.0
AGENTS = 2_000
USERS = 50_000
DAYS = 30
BATCH = 1_000_000
SPLIT_ROWS = 20_000
"""The newest interactions, written as a request row then a response row (unmerged parts for FINAL to fold)."""

_U64 = "18446744073709551615.0"


def _uniform(salt: str) -> str:
    """A deterministic uniform [0, 1] per row number and salt, so a rerun generates the same data."""
    return f"(cityHash64(number, '{salt}') / {_U64})"


def _attribution(now_us: int) -> str:
    span_us = DAYS * 86_400 * 1_000_000
    return f"""
        generateUUIDv4(number) AS interaction_id,
        fromUnixTimestamp64Micro(toInt64({now_us} - cityHash64(number, 'ts') % {span_us}), 'UTC') AS started_at,
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


def whole_rows_sql(start: int, count: int, now_us: int) -> str:
    return (
        f"INSERT INTO warden.interactions ({_KEY}, {_REQUEST}, {_RESPONSE}) "
        f"SELECT {_KEY}, {_REQUEST}, {_RESPONSE} FROM (SELECT {_attribution(now_us)}, {_request_columns()}, "
        f"{_response_columns()} FROM numbers({start}, {count}))"
    )


def split_rows_sql(start: int, count: int, now_us: int) -> tuple[str, str]:
    """The newest interactions as two inserts: request rows first, then response rows for the same ids."""
    # The ids must match across the two inserts, so they are derived from the row number, not random.
    ids = "toUUID(concat(lpad(hex(cityHash64(number, 'id1')), 16, '0'), lpad(hex(number), 16, '0')))"
    span_us = 3600 * 1_000_000
    attribution = _attribution(now_us).replace("generateUUIDv4(number)", ids)
    attribution = attribution.replace(f"% {DAYS * 86_400 * 1_000_000}", f"% {span_us}")
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


# The proposed change to 001_interactions.sql: the interaction_id bloom filter (whose ~18 MB at 10 M rows is read
# whole by every detail lookup) becomes a projection sorted by id (a binary search); smaller granules, because a
# user's newest rows sit in as many granules as rows (one per agent range) and each granule is read whole; and the
# user_id bloom filter becomes a narrow table sorted by user, filled by a materialized view, for the user's newest
# keys. Projections on an AggregatingMergeTree need deduplicate_merge_projection_mode.
VARIANT_DDL = """
CREATE TABLE IF NOT EXISTS warden.interactions
(
    interaction_id UUID,
    started_at DateTime64(6, 'UTC'),
    agent_id String,
    user_id SimpleAggregateFunction(any, String),
    session_id SimpleAggregateFunction(any, String),
    profile_id SimpleAggregateFunction(any, LowCardinality(String)),
    provider SimpleAggregateFunction(any, LowCardinality(String)),
    model SimpleAggregateFunction(any, LowCardinality(String)),
    route SimpleAggregateFunction(anyLast, Nullable(String)),
    stream SimpleAggregateFunction(anyLast, Nullable(UInt8)),
    request_received SimpleAggregateFunction(anyLast, Nullable(String)) CODEC(ZSTD(3)),
    request_sent SimpleAggregateFunction(anyLast, Nullable(String)) CODEC(ZSTD(3)),
    request_decisions SimpleAggregateFunction(anyLast, Nullable(String)) CODEC(ZSTD(3)),
    untrusted_since SimpleAggregateFunction(anyLast, Nullable(String)),
    status SimpleAggregateFunction(anyLast, Nullable(UInt16)),
    finished_at SimpleAggregateFunction(anyLast, Nullable(DateTime64(6, 'UTC'))),
    latency_ms SimpleAggregateFunction(anyLast, Nullable(Float64)),
    ttft_ms SimpleAggregateFunction(anyLast, Nullable(Float64)),
    input_tokens SimpleAggregateFunction(anyLast, Nullable(UInt32)),
    output_tokens SimpleAggregateFunction(anyLast, Nullable(UInt32)),
    cached_tokens SimpleAggregateFunction(anyLast, Nullable(UInt32)),
    finish_reason SimpleAggregateFunction(anyLast, Nullable(String)),
    response_body SimpleAggregateFunction(anyLast, Nullable(String)) CODEC(ZSTD(3)),
    tool_calls SimpleAggregateFunction(anyLast, Nullable(String)) CODEC(ZSTD(3)),
    blocked_tool_calls SimpleAggregateFunction(anyLast, Nullable(String)) CODEC(ZSTD(3)),
    response_decisions SimpleAggregateFunction(anyLast, Nullable(String)) CODEC(ZSTD(3)),
    blocked SimpleAggregateFunction(max, UInt8),
    error SimpleAggregateFunction(anyLast, Nullable(String)),
    aborted SimpleAggregateFunction(anyLast, Nullable(UInt8)),
    INDEX idx_session session_id TYPE bloom_filter(0.01) GRANULARITY 4,
    PROJECTION by_id (SELECT interaction_id, agent_id, started_at ORDER BY interaction_id)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(started_at)
ORDER BY (agent_id, started_at, interaction_id)
SETTINGS non_replicated_deduplication_window = 1000, index_granularity = 1024,
    deduplicate_merge_projection_mode = 'rebuild';

CREATE TABLE IF NOT EXISTS warden.interactions_by_user
(
    user_id String,
    started_at DateTime64(6, 'UTC'),
    agent_id String,
    interaction_id UUID
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(started_at)
ORDER BY (user_id, started_at, interaction_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS warden.interactions_by_user_mv TO warden.interactions_by_user AS
SELECT user_id, started_at, agent_id, interaction_id FROM warden.interactions WHERE user_id != '';
"""


async def apply_ddl(store: ChdbStore, ddl: Path | None, variant: bool) -> None:
    await migrate(store)  # the ledger and the other tables (violations) as Warden has them
    if ddl is None and not variant:
        return
    await store.execute("DROP TABLE IF EXISTS warden.interactions")
    for statement in statements(VARIANT_DDL if variant else ddl.read_text()):  # type: ignore[union-attr]
        await store.execute(statement)


# --- the proposed queries -------------------------------------------------------------------------------------

_KEYS = "agent_id, started_at, interaction_id"
_NEWEST = "ORDER BY started_at DESC, interaction_id DESC LIMIT {limit:UInt32}"


def two_phase_list(f: InteractionFilter, by_user_table: bool) -> tuple[str, dict[str, Any]]:
    """The real list query, rewritten: newest keys without FINAL, then FINAL on just those rows by primary key.

    Valid for filters on attribution columns, time and cursor (what is measured here): those columns are the same in
    both rows of an interaction. Filters on status or blocked need the folded row and stay in the outer query."""
    sql, params = queries.list_interactions(f)
    head, rest = sql.split(" FROM warden.interactions FINAL", 1)
    where = rest.split(" ORDER BY ", 1)[0]
    source = "warden.interactions"
    if by_user_table and f.user_id is not None and f.agent_id is None:
        source = "warden.interactions_by_user"
    keys = f"SELECT DISTINCT {_KEYS} FROM {source}{where} {_NEWEST}"
    return f"{head} FROM warden.interactions FINAL WHERE ({_KEYS}) IN ({keys}) {_NEWEST}", params


def detail_by_key(interaction_id: str) -> tuple[str, dict[str, Any]]:
    """The real detail query, rewritten: the id's key first (no FINAL), then the row by primary key."""
    sql, params = queries.get_interaction(interaction_id)
    head = sql.split(" WHERE ", 1)[0]
    keys = f"SELECT {_KEYS} FROM warden.interactions WHERE interaction_id = {{id:UUID}} LIMIT 1"
    return f"{head} WHERE ({_KEYS}) IN ({keys}) LIMIT 1", params


async def generate(store: ChdbStore, rows: int) -> float:
    now_us = int(datetime.now(UTC).timestamp() * 1_000_000)
    began = time.perf_counter()
    whole = max(rows - SPLIT_ROWS, 0)
    for start in range(0, whole, BATCH):
        await store.execute(whole_rows_sql(start, min(BATCH, whole - start), now_us))
        print(f"  inserted {min(start + BATCH, whole):,} rows", flush=True)
    request, response = split_rows_sql(whole, rows - whole, now_us)
    await store.execute(request)
    await store.execute(response)
    return time.perf_counter() - began


@dataclass
class Timing:
    name: str
    samples_ms: list[float]
    rows: list[int]
    target_ms: float | None

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
    samples, counts = [], []
    deadline = time.monotonic() + BUDGET_S
    for run in runs:
        began = time.perf_counter()
        counts.append(await run())
        samples.append((time.perf_counter() - began) * 1000)
        if len(samples) >= MIN_RUNS and time.monotonic() > deadline:
            break
    print(f"  {name}: p95 {Timing(name, samples, counts, target_ms).p(0.95):.1f} ms", flush=True)
    return Timing(name, samples, counts, target_ms)


async def sample(store: ChdbStore, n: int, seed: int) -> list[dict[str, Any]]:
    """Attribution of n random rows: row-weighted, so busy agents and users are picked as often as they are busy."""
    sql = (
        "SELECT toString(interaction_id) AS interaction_id, agent_id, user_id FROM warden.interactions "
        "WHERE cityHash64(interaction_id, {seed:UInt32}) % 1000 = 0 LIMIT {n:UInt32}"
    )
    rows = await store.select(sql, {"seed": seed, "n": n * 20})
    random.Random(seed).shuffle(rows)
    return rows[:n]


async def explain(store: ChdbStore, sql: str, params: dict[str, Any]) -> str:
    """The index lines of EXPLAIN: which skip indexes pruned how many granules."""
    rows = await store.select(f"EXPLAIN indexes = 1 {sql}", params)
    lines = [r["explain"] for r in rows]
    keep = [line.strip() for line in lines if any(k in line for k in ("Name:", "Granules:", "Parts:", "Type:"))]
    return " | ".join(keep)


async def check_proposed(
    api: InteractionsApi, store: ChdbStore, picks: list[dict[str, Any]], since: datetime, variant: bool
) -> None:
    """The proposed queries must answer exactly what the real ones do, or their timings mean nothing."""
    for p in picks:
        for f in (
            InteractionFilter(agent_id=p["agent_id"]),
            InteractionFilter(user_id=p["user_id"]),
            InteractionFilter(agent_id=p["agent_id"], user_id=p["user_id"], since=since),
        ):
            real = [i["interaction_id"] for i in (await api.page(f))["items"]]
            proposed = [r["interaction_id"] for r in (await store.select(*two_phase_list(f, variant)))[: f.limit]]
            if real != proposed:
                raise SystemExit(f"proposed list differs from the real one for {f}")
        real_detail = await store.select(*queries.get_interaction(p["interaction_id"]))
        if real_detail != await store.select(*detail_by_key(p["interaction_id"])):
            raise SystemExit(f"proposed detail differs for {p['interaction_id']}")


async def measure(store: ChdbStore, n_queries: int, variant: bool) -> tuple[list[Timing], dict[str, str]]:
    api = InteractionsApi(store)
    picks = await sample(store, n_queries, 7)
    week_ago = datetime.now(UTC) - timedelta(days=7)

    def listing(f: InteractionFilter) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            return len((await api.page(f))["items"])

        return run

    def detail(interaction_id: str) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            return 0 if await api.detail(interaction_id) is None else 1

        return run

    def proposed_listing(f: InteractionFilter) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            rows = await store.select(*two_phase_list(f, by_user_table=variant))
            return len([queries.present(r) for r in rows[: f.limit]])

        return run

    def proposed_detail(interaction_id: str) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            rows = await store.select(*detail_by_key(interaction_id))
            await store.select(*queries.violations_of(interaction_id))
            return len([queries.present(r) for r in rows])

        return run

    def seen(column: str) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            return len(await store.select(seen_values_sql(column)))

        return run

    await check_proposed(api, store, picks[:10], week_ago, variant)
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
            "proposed: agent",
            [proposed_listing(InteractionFilter(agent_id=p["agent_id"])) for p in picks],
            TARGET_LIST_P95_MS,
        ),
        await timed(
            "proposed: user",
            [proposed_listing(InteractionFilter(user_id=p["user_id"])) for p in picks],
            TARGET_LIST_P95_MS,
        ),
        await timed(
            "proposed: agent+user, 7d",
            [
                proposed_listing(InteractionFilter(agent_id=p["agent_id"], user_id=p["user_id"], since=week_ago))
                for p in picks
            ],
            TARGET_LIST_P95_MS,
        ),
        await timed("proposed: detail", [proposed_detail(p["interaction_id"]) for p in picks], TARGET_DETAIL_P95_MS),
        await timed("agents seen", [seen("agent_id")] * 20, None, warmup=2),
        await timed("users seen", [seen("user_id")] * 20, None, warmup=2),
    ]
    p = picks[0]
    plans = {
        "agent": await explain(store, *queries.list_interactions(InteractionFilter(agent_id=p["agent_id"], limit=50))),
        "user": await explain(store, *queries.list_interactions(InteractionFilter(user_id=p["user_id"], limit=50))),
        "detail": await explain(store, *queries.get_interaction(p["interaction_id"])),
    }
    return timings, plans


async def table_facts(store: ChdbStore) -> dict[str, Any]:
    (facts,) = await store.select(
        "SELECT count() AS parts, sum(rows) AS rows, sum(data_compressed_bytes) AS compressed_bytes "
        "FROM system.parts WHERE database = 'warden' AND table = 'interactions' AND active"
    )
    (distinct,) = await store.select(
        "SELECT uniqExact(agent_id) AS agents, uniqExact(user_id) AS users FROM warden.interactions"
    )
    return {**facts, **distinct}


async def main(args: argparse.Namespace) -> int:
    if args.reuse:
        data_dir, owned = Path(args.reuse), False
    elif args.keep:
        data_dir, owned = Path(args.keep), False
        data_dir.mkdir(parents=True, exist_ok=True)
    else:
        data_dir, owned = Path(tempfile.mkdtemp(prefix="warden-bench-")), True
    store = ChdbStore(data_dir)
    try:
        generation_s = None
        if not args.reuse:
            await apply_ddl(store, args.ddl, args.variant)
            print(f"generating {args.rows:,} interactions in {data_dir} ...", flush=True)
            generation_s = await generate(store, args.rows)
            print(f"  done in {generation_s:.0f} s", flush=True)
        facts = await table_facts(store)
        print(
            f"table: {facts['rows']:,} rows in {facts['parts']} parts, {facts['compressed_bytes'] / 1e6:.0f} MB "
            f"compressed; {facts['agents']:,} agents, {facts['users']:,} users",
            flush=True,
        )
        load_before = os.getloadavg()[0]
        timings, plans = await measure(store, args.queries, args.variant)
        load_after = os.getloadavg()[0]
    finally:
        await store.close()
        if owned:
            shutil.rmtree(data_dir, ignore_errors=True)

    headers = ["query", "runs", "p50 ms", "p95 ms", "max ms", "rows", "target p95", ""]
    print()
    print(render_table(headers, [t.row() for t in timings]))
    print()
    for name, plan in plans.items():
        print(f"plan {name}: {plan}")
    # A shared machine skews every figure: the load average says how much else was running.
    print(f"load average (1 min) before / after timing: {load_before:.1f} / {load_after:.1f} on {os.cpu_count()} CPUs")
    stamp = timestamp()
    path = write_results(
        "query_latency",
        stamp,
        {
            "rows": args.rows if not args.reuse else facts["rows"],
            "ddl": "VARIANT_DDL" if args.variant else str(args.ddl) if args.ddl else "schemas/migrations",
            "generation_s": generation_s,
            "table": facts,
            "timings": {
                t.name: {"p50_ms": t.p(0.5), "p95_ms": t.p(0.95), "max_ms": max(t.samples_ms)} for t in timings
            },
            "plans": plans,
            "load_average": [load_before, load_after],
            "cpus": os.cpu_count(),
        },
    )
    print(f"\nresults: {path}")
    missed = [t for t in timings if t.target_ms is not None and t.p(0.95) >= t.target_ms]
    return 1 if missed else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="interactions to generate (1000000, 10000000)")
    parser.add_argument("--queries", type=int, default=200, help="timed queries of each kind")
    parser.add_argument("--ddl", type=Path, help="a DDL file to use instead of the migrations (to compare a change)")
    parser.add_argument("--variant", action="store_true", help="build the table from VARIANT_DDL (the proposal)")
    parser.add_argument("--keep", help="generate into this directory and keep it")
    parser.add_argument("--reuse", help="time the data already in this directory (from --keep), no generation")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
