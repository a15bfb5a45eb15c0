"""Migrations 003 to 006 on a store written before them, on both engines (chDB and a ClickHouse server): the read
tables are backfilled from warden.interactions, so what was recorded before the upgrade reads the same after it
(lists by agent, by user, by time with nothing fixed, the detail, the filter suggestions), and what is recorded after
reaches them too.

The same scenario (``upgrade``) runs on each engine through ``tests.support.store_runner`` (chDB in a child process,
since this one serves the shared Warden's directory)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from plumbing.store.base import Store
from plumbing.store.migrations import migration_files, statements
from tests.support.clickhouse_fixture import new_clickhouse_server
from tests.support.store_runner import ENGINES, run_on_chdb, run_on_server

AGENT = "agent-before-003"


async def upgrade(store: Store, before: int) -> dict[str, Any]:
    from plumbing.store.migrations import _LEDGER, migrate
    from services.console.api import InteractionsApi
    from services.console.queries import InteractionFilter
    from services.console.viewer import seen_values_sql
    from services.logger.rows import interaction_rows, request_row, response_row, violation_row
    from tests.distributed.events import interaction

    # What a directory migrated up to ``before`` holds: the ledger and those migrations.
    await store.execute("CREATE DATABASE IF NOT EXISTS warden")
    await store.execute(_LEDGER)
    for version, name, script in migration_files():
        if version <= before:
            for statement in statements(script):
                await store.execute(statement)
            await store.insert("warden.schema_migrations", [{"version": version, "name": name}])
    # Rows as the logger wrote them then: only the columns the table had (later migrations add some).
    existing = {
        row["name"]
        for row in await store.select(
            "SELECT name FROM system.columns WHERE database = 'warden' AND table = 'interactions'"
        )
    }

    def then(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in row.items() if k in existing} for row in rows]

    split_request, split_response = interaction(AGENT, 1)
    in_flight, _ = interaction(AGENT, 2)
    whole = interaction(AGENT, 3)
    # One insert each: the halves of the split one sit in different parts, unfolded, as the logger leaves them
    # when a request and its response arrive in different batches.
    await store.insert("warden.interactions", then([request_row(split_request)]))
    await store.insert("warden.interactions", then([request_row(in_flight)]))
    await store.insert("warden.interactions", then([response_row(split_response)]))
    await store.insert("warden.interactions", then(interaction_rows(list(whole))))
    await store.insert("warden.violations", [violation_row(_violation(split_request.interaction_id))])

    applied = await migrate(store)
    api = InteractionsApi(store)
    pages = {
        "agent": await api.page(InteractionFilter(agent_id=AGENT)),
        "user": await api.page(InteractionFilter(user_id=split_request.user_id)),
        "in_flight": await api.page(InteractionFilter(agent_id=AGENT, status="in_flight")),
        "ok": await api.page(InteractionFilter(agent_id=AGENT, status="200", limit=1)),
        "flagged": await api.page(InteractionFilter(agent_id=AGENT, violation_category="pii")),
        "newest": await api.page(InteractionFilter()),
        "newest_ok": await api.page(InteractionFilter(status="200")),
    }
    seen = {column: await store.select(seen_values_sql(column)) for column in ("agent_id", "user_id", "model")}
    details = {
        "split": await api.detail(split_request.interaction_id),
        "in_flight": await api.detail(in_flight.interaction_id),
    }
    later = interaction(AGENT, 4)
    await store.insert("warden.interactions", interaction_rows(list(later)))
    after = await api.page(InteractionFilter(agent_id=AGENT))
    newest_after = await api.page(InteractionFilter())
    return {
        "applied": applied,
        "again": await migrate(store),
        "ids": {
            "split": split_request.interaction_id,
            "in_flight": in_flight.interaction_id,
            "whole": whole[0].interaction_id,
            "later": later[0].interaction_id,
        },
        "pages": pages,
        "details": details,
        "seen": seen,
        "user": split_request.user_id,
        "after": after,
        "newest_after": newest_after,
    }


def _violation(interaction_id: str) -> Any:
    from schemas.events import Evidence, ViolationEvent

    return ViolationEvent(
        violation_id=f"v-{interaction_id}",
        interaction_id=interaction_id,
        detected_at="2026-03-14T15:09:26Z",
        detector="pii",
        category="pii",
        severity="high",
        score=0.9,
        action="logged",
        evidence=Evidence(location="request", excerpt="a card number"),
        profile_id="default",
        agent_id=AGENT,
    )


def _migrations_after(number: int) -> list[str]:
    """Every migration file numbered above ``number``, in order: what an upgrade from there applies."""
    return [name for version, name, _ in migration_files() if version > number]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    ("before", "applied"),
    [(before, _migrations_after(before)) for before in (2, 3, 4)],
)
async def test_a_store_with_rows_from_before_the_read_tables_reads_the_same_after_them(
    tmp_path, engine, before, applied
):
    if engine == "chdb":
        out = await run_on_chdb(tmp_path / "data", upgrade, before=before)
    else:
        # A server of its own: the session's has every migration applied already.
        server = new_clickhouse_server()
        await asyncio.to_thread(server.start)
        try:
            out = await run_on_server(server.url, upgrade, before=before)
        finally:
            await asyncio.to_thread(server.close)
    ids = out["ids"]
    assert out["applied"] == applied and out["again"] == []

    def listed(page: dict[str, Any]) -> list[str]:
        return [item["interaction_id"] for item in page["items"]]

    pages = out["pages"]
    # Newest first: interaction() stamps each with the time it was made.
    assert listed(pages["agent"]) == [ids["whole"], ids["in_flight"], ids["split"]]
    assert pages["agent"]["next_cursor"] is None
    assert listed(pages["user"]) == [ids["split"]]
    assert listed(pages["in_flight"]) == [ids["in_flight"]]
    assert listed(pages["ok"]) == [ids["whole"]] and pages["ok"]["next_cursor"]
    assert listed(pages["flagged"]) == [ids["split"]]
    by_id = {item["interaction_id"]: item for item in pages["agent"]["items"]}
    assert by_id[ids["split"]]["status"] == 200 and not by_id[ids["split"]]["in_flight"]
    assert by_id[ids["split"]]["route"] == "/chat/completions"  # from the request half
    assert by_id[ids["in_flight"]]["in_flight"] and by_id[ids["in_flight"]]["status"] is None

    split = out["details"]["split"]
    assert split["status"] == 200 and split["request_received"].startswith('{"messages"')
    assert split["response_body"] == '{"choices":[]}'
    assert [v["category"] for v in split["violations"]] == ["pii"]
    flying = out["details"]["in_flight"]
    assert flying["in_flight"] and flying["response_body"] is None and flying["violations"] == []

    # With nothing fixed (the table sorted by time): the same interactions, the folded status decides the second.
    assert listed(pages["newest"]) == [ids["whole"], ids["in_flight"], ids["split"]]
    assert listed(pages["newest_ok"]) == [ids["whole"], ids["split"]]
    assert [row["value"] for row in out["seen"]["agent_id"]] == [AGENT]
    assert out["user"] in [row["value"] for row in out["seen"]["user_id"]]
    assert [row["value"] for row in out["seen"]["model"]] == ["gpt-4o"]

    assert listed(out["after"]) == [ids["later"], ids["whole"], ids["in_flight"], ids["split"]]
    assert listed(out["newest_after"]) == listed(out["after"])
