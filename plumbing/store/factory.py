"""Chooses the store from the settings: a ClickHouse server when its URL is configured, else chDB."""

from __future__ import annotations

from plumbing.settings import CommonSettings
from plumbing.store.base import Store


def make_store(settings: CommonSettings) -> Store:
    if settings.clickhouse_url:
        from plumbing.store.server_store import ServerStore

        return ServerStore(settings.clickhouse_url)
    from plumbing.store.chdb_store import ChdbStore

    return ChdbStore(
        settings.data_dir / "clickhouse",
        max_memory_bytes=settings.chdb_max_memory_bytes,
        max_query_memory_bytes=settings.chdb_max_query_memory_bytes,
    )
