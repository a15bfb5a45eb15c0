"""The store's contract on both engines: chDB (embedded) and a real ClickHouse server (distributed) run the same DDL,
the same inserts and the same read API queries, and answer the same."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from plumbing.store.base import Store
from tests.support.store_runner import ENGINES, Scenario, run_on_chdb, run_on_server


@pytest.fixture(params=ENGINES)
def on_store(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    """``await on_store(scenario, **kwargs)``: the scenario's result on this test's engine."""
    if request.param == "server":
        url = request.getfixturevalue("clickhouse_server").url

        async def run(scenario: Scenario, **kwargs: Any) -> Any:
            return await run_on_server(url, scenario, **kwargs)

    else:

        async def run(scenario: Scenario, **kwargs: Any) -> Any:
            return await run_on_chdb(tmp_path / "chdb", scenario, **kwargs)

    return run


async def the_read_api_over_stored_interactions(store: Store, agent: str) -> dict[str, Any]:
    from plumbing.store.migrations import migrate
    from services.console import queries
    from services.console.api import InteractionsApi
    from services.logger.rows import interaction_rows
    from tests.distributed.events import interaction

    await migrate(store)
    again = await migrate(store)
    rows = interaction_rows([e for n in range(30) for e in interaction(agent, n)])
    await store.insert("warden.interactions", rows, dedup_token=f"t-{agent}")
    await store.insert("warden.interactions", rows, dedup_token=f"t-{agent}")  # a retried batch
    api = InteractionsApi(store)
    page = await api.page(queries.InteractionFilter(agent_id=agent, limit=100))
    detail = await api.detail(page["items"][0]["interaction_id"])
    since = queries.InteractionFilter(agent_id=agent, since=datetime(2000, 1, 1, tzinfo=UTC), limit=5)
    first = await api.page(since)
    since.cursor = first["next_cursor"]
    second = await api.page(since)
    by_status = {
        status: len((await api.page(queries.InteractionFilter(agent_id=agent, status=status, limit=100)))["items"])
        for status in ("200", "in_flight", "error")
    }
    raw = await store.select(
        "SELECT count() AS n FROM warden.interactions FINAL WHERE agent_id = {agent:String}", {"agent": agent}
    )
    return {
        "again": again,
        "page": page,
        "detail": detail,
        "first": first,
        "second": second,
        "by_status": by_status,
        "stored": raw[0]["n"],
        "user": page["items"][0]["user_id"],
    }


async def test_the_read_api_answers_the_same_on_both_engines(on_store):
    agent = f"store-{uuid.uuid4().hex[:8]}"
    out = await on_store(the_read_api_over_stored_interactions, agent=agent)
    assert out["again"] == []  # migrations apply once
    items = out["page"]["items"]
    assert len(items) == 30 and out["stored"] == 30  # the retried batch doubled nothing
    assert all(i["status"] == 200 and not i["in_flight"] for i in items) and out["page"]["next_cursor"] is None
    started = [i["started_at"] for i in items]
    assert started == sorted(started, reverse=True)  # newest first
    assert out["detail"]["request_received"].startswith('{"messages"')
    assert out["detail"]["response_body"] == '{"choices":[]}'
    assert len(out["first"]["items"]) == 5 and out["first"]["next_cursor"]
    assert [i["interaction_id"] for i in out["second"]["items"]] == [i["interaction_id"] for i in items[5:10]]
    assert out["by_status"] == {"200": 30, "in_flight": 0, "error": 0}


async def inserts_the_store_refuses(store: Store, agent: str) -> dict[str, Any]:
    from plumbing.store.migrations import migrate

    await migrate(store)
    refused = {}
    bad_rows = {
        "missing_table": ("warden.no_such_table", [{"agent_id": agent}]),
        "bad_value": ("warden.interactions", [{"interaction_id": "not-a-uuid", "agent_id": agent}]),
        "bad_time": (
            "warden.interactions",
            [{"interaction_id": str(uuid.uuid4()), "started_at": "yesterday-ish", "agent_id": agent}],
        ),
    }
    for name, (table, rows) in bad_rows.items():
        try:
            await store.insert(table, rows, dedup_token=f"{agent}-{name}")
        except Exception as exc:
            refused[name] = str(exc)[:200]
        else:
            refused[name] = None
    (row,) = await store.select(
        "SELECT count() AS n FROM warden.interactions WHERE agent_id = {agent:String}", {"agent": agent}
    )
    return {"refused": refused, "stored": row["n"]}


async def test_an_insert_the_store_refuses_raises_on_both_engines(on_store):
    """The logger acknowledges a batch only when its insert returns: a refused insert must raise, never pass."""
    out = await on_store(inserts_the_store_refuses, agent=f"refused-{uuid.uuid4().hex[:8]}")
    assert all(out["refused"].values()), out["refused"]
    assert out["stored"] == 0
