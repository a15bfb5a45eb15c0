"""The ClickHouse-server store runs the same DDL and queries as chDB. It needs a server: WARDEN_CLICKHOUSE_URL (no
ClickHouse server can be installed or started on machines without Docker; the query layer itself is exercised on
chDB by the rest of the suite)."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime

import pytest

from plumbing.store.migrations import migrate
from plumbing.store.server_store import ServerStore
from services.console import queries
from services.logger.rows import interaction_rows
from tests.distributed.events import interaction

URL = os.environ.get("WARDEN_CLICKHOUSE_URL")
pytestmark = pytest.mark.skipif(not URL, reason="WARDEN_CLICKHOUSE_URL is not set: no ClickHouse server to test")


async def test_the_same_ddl_and_queries_run_on_a_server():
    store = ServerStore(URL or "")
    try:
        await migrate(store)
        agent = f"server-{uuid.uuid4().hex[:8]}"
        events = [e for n in range(30) for e in interaction(agent, n)]
        rows = interaction_rows(events)
        await store.insert("warden.interactions", rows, dedup_token=f"t-{agent}")
        await store.insert("warden.interactions", rows, dedup_token=f"t-{agent}")  # a retried batch
        sql, params = queries.list_interactions(queries.InteractionFilter(agent_id=agent, limit=100))
        items = await store.select(sql, params)
        assert len(items) == 30 and all(i["status"] == 200 for i in items)
        sql, params = queries.get_interaction(items[0]["interaction_id"])
        (detail,) = await store.select(sql, params)
        assert detail["request_received"].startswith('{"messages"')
        since = queries.InteractionFilter(agent_id=agent, since=datetime(2000, 1, 1, tzinfo=UTC), limit=5)
        sql, params = queries.list_interactions(since)
        assert len(await store.select(sql, params)) == 6
    finally:
        await store.close()
