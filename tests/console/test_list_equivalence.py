"""The lists read from the read copies (their keys and the list columns, ``services/console/queries.py``) against
the plain query: ``warden.interactions`` folded with FINAL, filtered on the folded rows, newest first. For every
filter shape, page by page through the keyset cursor, on both engines, with the rows as the logger leaves them
(request and response halves in different parts, some written twice, background merges stopped) and with
interactions arriving between two pages.

The scenario (``compare``) runs on each engine through ``tests.support.store_runner``."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from plumbing.store.base import Store
from tests.console.test_read_path import TABLES as COPIES
from tests.support.clickhouse_fixture import new_clickhouse_server
from tests.support.store_runner import ENGINES, run_on_chdb, run_on_server

AGENTS = ("agent-a", "agent-b", "agent-c")
USERS = ("user-1", "user-2")
TABLES = (*COPIES, "interaction_outcomes")
"""The record, its list copies and the keys of its outcomes (migration 011, kept last: added by an upgrade)."""
NOW = datetime.now(UTC).replace(microsecond=0)
SINCE = NOW - timedelta(hours=30)
UNTIL = NOW - timedelta(hours=5)
ATTRIBUTION = ("interaction_id", "started_at", "agent_id", "user_id", "session_id", "profile_id", "provider", "model")
"""What a request and its response both carry."""

# (name, filter fields, the same filter as a condition on the folded rows of warden.interactions FINAL)
SHAPES: list[tuple[str, dict[str, Any], str]] = [
    ("everything", {}, "1"),
    ("agent", {"agent_id": "agent-a"}, "agent_id = 'agent-a'"),
    ("user", {"user_id": "user-2"}, "user_id = 'user-2'"),
    ("agent and user", {"agent_id": "agent-b", "user_id": "user-1"}, "agent_id = 'agent-b' AND user_id = 'user-1'"),
    ("session", {"session_id": "session-1"}, "session_id = 'session-1'"),
    ("provider", {"provider": "anthropic"}, "provider = 'anthropic'"),
    ("model and profile", {"model": "gpt-4o", "profile_id": "strict"}, "model = 'gpt-4o' AND profile_id = 'strict'"),
    (
        "time window",
        {"since": SINCE, "until": UNTIL},
        f"started_at >= '{SINCE:%Y-%m-%d %H:%M:%S}' AND started_at < '{UNTIL:%Y-%m-%d %H:%M:%S}'",
    ),
    ("status code", {"status": "200"}, "status = 200"),
    ("status class", {"status": "4xx"}, "status >= 400 AND status < 500"),
    ("errors", {"status": "error"}, "(status >= 400 OR error IS NOT NULL)"),
    ("in flight", {"status": "in_flight"}, "status IS NULL"),
    ("blocked", {"blocked": True}, "blocked = 1"),
    ("not blocked", {"blocked": False}, "blocked = 0"),
    (
        "agent, errors",
        {"agent_id": "agent-a", "status": "error"},
        "agent_id = 'agent-a' AND (status >= 400 OR error IS NOT NULL)",
    ),
    ("user, in flight", {"user_id": "user-1", "status": "in_flight"}, "user_id = 'user-1' AND status IS NULL"),
    (
        "agent, blocked, 2xx",
        {"agent_id": "agent-b", "blocked": True, "status": "2xx"},
        "agent_id = 'agent-b' AND blocked = 1 AND status >= 200 AND status < 300",
    ),
    ("server errors", {"status": "5xx"}, "status >= 500 AND status < 600"),
    ("one error code", {"status": "429"}, "status = 429"),
    (
        "user, errors",
        {"user_id": "user-2", "status": "error"},
        "user_id = 'user-2' AND (status >= 400 OR error IS NOT NULL)",
    ),
    ("user, blocked", {"user_id": "user-1", "blocked": True}, "user_id = 'user-1' AND blocked = 1"),
    ("blocked, in flight", {"blocked": True, "status": "in_flight"}, "blocked = 1 AND status IS NULL"),
    (
        "not blocked, errors",
        {"blocked": False, "status": "error"},
        "blocked = 0 AND (status >= 400 OR error IS NOT NULL)",
    ),
    (
        "agent, provider, errors, time window",
        {"agent_id": "agent-c", "provider": "openai", "status": "error", "since": SINCE - timedelta(days=30)},
        f"agent_id = 'agent-c' AND provider = 'openai' AND (status >= 400 OR error IS NOT NULL) "
        f"AND started_at >= '{SINCE - timedelta(days=30):%Y-%m-%d %H:%M:%S}'",
    ),
    (
        "violations",
        {"violation_category": "pii"},
        "interaction_id IN (SELECT interaction_id FROM warden.violations WHERE category = 'pii')",
    ),
    (
        "agent, severe violations",
        {"agent_id": "agent-c", "min_severity": "high"},
        "agent_id = 'agent-c' AND "
        "interaction_id IN (SELECT interaction_id FROM warden.violations WHERE severity_rank >= 3)",
    ),
]


def _interactions(rng: random.Random, count: int, newest: datetime) -> list[dict[str, Any]]:
    """Varied interactions, newest first a few minutes apart: attribution, status, error, blocked halves."""
    made = []
    for n in range(count):
        made.append(
            {
                "interaction_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                # Some share a start time exactly: the id then decides the order.
                "started_at": newest - timedelta(minutes=7 * (n // 2 if n % 5 == 0 else n)),
                "agent_id": rng.choice(AGENTS),
                "user_id": rng.choice(USERS),
                "session_id": rng.choice(("session-1", "session-2")),
                "profile_id": rng.choice(("default", "strict")),
                "provider": rng.choice(("openai", "anthropic")),
                "model": rng.choice(("gpt-4o", "claude-sonnet-4-5")),
                "status": rng.choice((200, 200, 200, 403, 429, 500, None)),
                "error": rng.choice((None, None, None, "upstream reset")),
                "blocked_request": rng.random() < 0.2,
                "blocked_response": rng.random() < 0.2,
                "violation": rng.choice((None, None, "pii", "secret")),
                "severity": rng.choice(("low", "high", "critical")),
            }
        )
    return made


def _halves(i: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    from schemas.events import RequestEvent, ResponseEvent
    from schemas.view import Usage
    from services.logger.rows import request_row, response_row

    common = {k: i[k] for k in ATTRIBUTION}
    request = request_row(RequestEvent(**common, route="/chat/completions", request_received='{"messages":[]}'))
    request["blocked"] = int(i["blocked_request"])
    if i["status"] is None:
        return request, None
    response = response_row(
        ResponseEvent(
            **common,
            status=i["status"],
            response_body='{"choices":[]}',
            finished_at=i["started_at"] + timedelta(milliseconds=40),
            latency_ms=40.0,
            usage=Usage(input_tokens=12, output_tokens=34),
            error=i["error"],
        )
    )
    response["blocked"] = int(i["blocked_response"])
    return request, response


async def _write(store: Store, made: list[dict[str, Any]], rng: random.Random) -> None:
    """As the logger writes: most halves in different inserts (so in different parts, unfolded), some as one row,
    some inserted twice."""
    from schemas.events import Evidence, ViolationEvent
    from services.logger.rows import violation_row

    requests, responses, whole = [], [], []
    for i in made:
        request, response = _halves(i)
        if response is not None and rng.random() < 0.3:
            folded = dict(request)
            folded.update({k: v for k, v in response.items() if v is not None})
            folded["blocked"] = max(request["blocked"], response["blocked"])
            whole.append(folded)
            continue
        requests.append(request)
        if response is not None:
            responses.append(response)
    for rows in (requests, whole, responses, responses[: len(responses) // 3]):
        if rows:
            await store.insert("warden.interactions", rows)
    violations = [
        violation_row(
            ViolationEvent(
                violation_id=f"v-{i['interaction_id']}",
                interaction_id=i["interaction_id"],
                detected_at=i["started_at"] + timedelta(seconds=1),
                detector="test",
                category=i["violation"],
                severity=i["severity"],
                score=0.9,
                action="logged",
                evidence=Evidence(location="request", excerpt="x"),
                profile_id=i["profile_id"],
                agent_id=i["agent_id"],
            )
        )
        for i in made
        if i["violation"]
    ]
    if violations:
        await store.insert("warden.violations", violations)


async def _plain(store: Store, where: str, after: tuple[str, str] | None) -> list[dict[str, Any]]:
    """The plain query: the record folded with FINAL, the filter on the folded rows, newest first, keyset after
    ``after``."""
    from services.console import queries

    columns = ", ".join(queries._SUMMARY_COLUMNS)
    keyset = (
        f" AND (started_at, interaction_id) < (toDateTime64('{after[0]}', 6, 'UTC'), toUUID('{after[1]}'))"
        if after
        else ""
    )
    rows = await store.select(
        f"SELECT {columns} FROM warden.interactions FINAL WHERE ({where}){keyset} "
        "ORDER BY started_at DESC, interaction_id DESC"
    )
    return [queries.present(row) for row in rows]


async def _pages(api: Any, fields: dict[str, Any], limit: int, cursor: str | None = None, pages: int = 1000) -> Any:
    from services.console.queries import InteractionFilter

    items: list[dict[str, Any]] = []
    for _ in range(pages):
        page = await api.page(InteractionFilter(**fields, limit=limit, cursor=cursor))
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    return items, cursor


async def _upgrade_to_outcomes(store: Store, made: list[dict[str, Any]], rng: random.Random) -> list[str]:
    """A store at migration 10 with ``made`` written, then migrated (011 backfills the outcomes' keys), then 011's
    statements run a second time, as a retry after a failure part-way would. Returns what ``migrate`` applied."""
    from plumbing.store.migrations import _LEDGER, migrate, migration_files, statements

    await store.execute("CREATE DATABASE IF NOT EXISTS warden")
    await store.execute(_LEDGER)
    for version, name, script in migration_files():
        if version <= 10:
            for statement in statements(script):
                await store.execute(statement)
            await store.insert("warden.schema_migrations", [{"version": version, "name": name}])
    for table in TABLES[:-1]:
        await store.execute(f"SYSTEM STOP MERGES warden.{table}")
    await _write(store, made, rng)
    applied = await migrate(store)
    await store.execute("SYSTEM STOP MERGES warden.interaction_outcomes")
    for version, _name, script in migration_files():
        if version == 11:
            for statement in statements(script):
                await store.execute(statement)
    return applied


class _FoldsNoted:
    """The store, noting how many interactions each fold of an outcome list's keys (``outcome_fold``) asks for."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.folds: list[int] = []

    async def select(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        if params and "ids" in params:
            self.folds.append(len(orjson.loads(params["ids"])))
        return await self.store.select(sql, params)


async def compare(store: Store, seed: int, upgrade: bool = False) -> dict[str, Any]:
    """Every shape paged through on the read copies, and its plain query, before and after rows arrive between two
    pages. Returns both for each shape. ``upgrade``: the first rows are written before migration 011, which then
    backfills them (twice)."""
    from plumbing.store.migrations import migrate
    from services.console.api import InteractionsApi
    from services.console.queries import InteractionFilter, decode_cursor, plan_list

    rng = random.Random(seed)
    # Most within hours, some days and months older: a list reads time windows, a short one first, wider ones
    # while they hold too few (services/console/queries.py); these make lists cross every window.
    made = (
        _interactions(rng, 60, NOW)
        + _interactions(rng, 8, NOW - timedelta(days=3))
        + _interactions(rng, 8, NOW - timedelta(days=20))
        + _interactions(rng, 6, NOW - timedelta(days=90))
    )
    applied = None
    if upgrade:
        applied = await _upgrade_to_outcomes(store, made, rng)
    else:
        await migrate(store)
        for table in TABLES:
            await store.execute(f"SYSTEM STOP MERGES warden.{table}")
        await _write(store, made, rng)
    selects = _FoldsNoted(store)
    api = InteractionsApi(selects)
    out: dict[str, Any] = {"_applied": applied, "_by_outcome": [], "_folds": selects.folds}
    for name, fields, _where in SHAPES:
        if plan_list(InteractionFilter(**fields)).by_outcome:
            out["_by_outcome"].append(name)
    for name, fields, where in SHAPES:
        listed, _ = await _pages(api, fields, limit=4)
        out[name] = {"listed": listed, "plain": await _plain(store, where, None)}

    # Rows arriving between pages: the first two pages of each shape, then newer interactions, the responses of some
    # that were in flight and interactions older than the cursor; the next pages go on after the cursor.
    firsts = {}
    for name, fields, _where in SHAPES:
        firsts[name] = await _pages(api, fields, limit=3, pages=2)
    later = _interactions(rng, 20, NOW + timedelta(minutes=30)) + _interactions(rng, 20, NOW - timedelta(days=1))
    await _write(store, later, rng)
    answered = [i for i in made if i["status"] is None][:4]
    for i in answered:
        i.update(status=200, error=None)
        _, response = _halves(i)
        await store.insert("warden.interactions", [response])
    for name, fields, where in SHAPES:
        _first, cursor = firsts[name]
        rest, _ = await _pages(api, fields, limit=3, cursor=cursor) if cursor else ([], None)
        after = decode_cursor(cursor) if cursor else None
        out[name]["continued"] = {
            "listed": rest,
            "plain": await _plain(store, where, after) if after else [],
        }
    for table in TABLES:
        await store.execute(f"SYSTEM START MERGES warden.{table}")
    return out


BY_OUTCOME = [
    "status class",
    "errors",
    "blocked",
    "agent, errors",
    "agent, blocked, 2xx",
    "server errors",
    "one error code",
    "user, errors",
    "user, blocked",
    "blocked, in flight",
    "not blocked, errors",
    "agent, provider, errors, time window",
]
"""The shapes whose keys come from migration 011's table of outcomes: the rest read the list copies alone."""


@pytest.mark.parametrize("upgrade", [False, True], ids=["written-after-011", "backfilled-by-011"])
@pytest.mark.parametrize("engine", ENGINES)
async def test_every_list_shape_pages_through_the_same_rows_as_the_plain_query(tmp_path, engine, upgrade):
    if engine == "chdb":
        out = await run_on_chdb(tmp_path / "data", compare, seed=11, upgrade=upgrade)
    else:
        server = new_clickhouse_server()
        await asyncio.to_thread(server.start)
        try:
            out = await run_on_server(server.url, compare, seed=11, upgrade=upgrade)
        finally:
            await asyncio.to_thread(server.close)
    assert out.pop("_applied") == (["011_outcomes.sql"] if upgrade else None)
    assert out.pop("_by_outcome") == BY_OUTCOME
    # An outcome list folds only the interactions its page lacks (pages of 4, then of 3: at most 5 at a time), not
    # every key its round read (up to twice that, as an interaction can have two rows there).
    folds = out.pop("_folds")
    assert folds and max(folds) <= 5
    assert set(out) == {name for name, _, _ in SHAPES}
    for name, found in out.items():
        assert found["listed"] == found["plain"], name
        assert found["continued"]["listed"] == found["continued"]["plain"], name
    # The data covers each shape: none is vacuous.
    assert all(found["plain"] for found in out.values())
    assert sum(len(found["continued"]["plain"]) for found in out.values()) > 0
