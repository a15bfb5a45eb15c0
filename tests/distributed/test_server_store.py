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
from services.console.api import InteractionsApi
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
        api = InteractionsApi(store)
        page = await api.page(queries.InteractionFilter(agent_id=agent, limit=100))
        items = page["items"]
        assert len(items) == 30 and all(i["status"] == 200 for i in items) and page["next_cursor"] is None
        detail = await api.detail(items[0]["interaction_id"])
        assert detail is not None and detail["request_received"].startswith('{"messages"')
        since = queries.InteractionFilter(agent_id=agent, since=datetime(2000, 1, 1, tzinfo=UTC), limit=5)
        first = await api.page(since)
        assert len(first["items"]) == 5 and first["next_cursor"]
        since.cursor = first["next_cursor"]
        assert [i["interaction_id"] for i in (await api.page(since))["items"]] == [
            i["interaction_id"] for i in items[5:10]
        ]
        for status, count in (("200", 30), ("in_flight", 0), ("error", 0)):
            f = queries.InteractionFilter(agent_id=agent, status=status, limit=100)
            assert len((await api.page(f))["items"]) == count
    finally:
        await store.close()
