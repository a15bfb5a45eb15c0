"""The embedded store: chDB, the ClickHouse engine in-process, persisted under a data directory."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from plumbing.slowdown import slow_store
from plumbing.store.base import Row
from plumbing.store.sql import decode_json_result, insert_statement, json_each_row, with_output_settings
from plumbing.threads import named_executor


def connection_string(path: str | Path, max_memory_bytes: int, max_query_memory_bytes: int) -> str:
    limits = {"max_server_memory_usage": max_memory_bytes, "max_memory_usage": max_query_memory_bytes}
    query = "&".join(f"{name}={value}" for name, value in limits.items() if value)
    return f"file:{path}?{query}" if query else str(path)


class ChdbStore:
    def __init__(self, path: str | Path, *, max_memory_bytes: int = 0, max_query_memory_bytes: int = 0) -> None:
        """``max_memory_bytes``: chDB's ``max_server_memory_usage`` (everything it tracks); ``max_query_memory_bytes``:
        its ``max_memory_usage`` (one query). 0 leaves chDB's own default. chDB reads both from the connection
        string (measured: a query beyond either fails with MEMORY_LIMIT_EXCEEDED)."""
        from chdb import session  # imported here: the module is large and only the embedded store needs it

        Path(path).mkdir(parents=True, exist_ok=True)
        self._session = session.Session(connection_string(path, max_memory_bytes, max_query_memory_bytes))
        # One thread owns the session: chDB sessions are not meant for concurrent use, and running queries off the
        # event loop keeps the proxy answering while a batch is written.
        self._executor = named_executor("chdb")

    async def _run(self, sql: str, fmt: str, params: Mapping[str, Any] | None) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._query, sql, fmt, params)

    def _query(self, sql: str | bytes, fmt: str, params: Mapping[str, Any] | None) -> Any:
        result = self._session.query(sql, fmt, params=dict(params) if params else None)
        if hasattr(result, "has_error") and result.has_error():
            raise RuntimeError(result.error_message())
        return result

    async def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        await self._run(sql, "CSV", params)

    async def insert(self, table: str, rows: Sequence[Mapping[str, Any]], dedup_token: str | None = None) -> None:
        if not rows:
            return
        loop = asyncio.get_running_loop()
        # Serialised in the store's thread, not here: a batch of thousands of rows takes milliseconds to encode, and
        # on the event loop (the proxy's, in the embedded default) every request would wait for it.
        await loop.run_in_executor(self._executor, self._insert, table, dedup_token, rows)

    def _insert(self, table: str, dedup_token: str | None, rows: Sequence[Mapping[str, Any]]) -> None:
        data = json_each_row(rows)
        # A plain INSERT with the rows inline, as bytes (no text to decode and copy). Not chDB's streaming insert
        # (`send_insert(...).finish()`): when the part cannot be written (disk full, directory not writable) it
        # returns success with `rows_written` set and stores nothing, and the logger would then acknowledge events
        # that were never stored. This path raises (NOT_ENOUGH_SPACE, CANNOT_OPEN_FILE, ...) for the main table and
        # for every materialized view it feeds, so a failed batch is retried, never acknowledged. It costs about a
        # tenth more CPU per insert.
        slow_store()
        self._query(insert_statement(table, dedup_token).encode() + b"\n" + data, "CSV", None)

    async def select(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        result = await self._run(with_output_settings(sql), "JSON", params)
        return decode_json_result(result.bytes())

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._session.close)
        self._executor.shutdown(wait=True)
