"""The embedded store: chDB, the ClickHouse engine in-process, persisted under a data directory."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from plumbing.store.base import Row
from plumbing.store.sql import decode_json_result, insert_head, insert_statement, json_each_row, with_output_settings


class ChdbStore:
    def __init__(self, path: str | Path) -> None:
        from chdb import session  # imported here: the module is large and only the embedded store needs it

        Path(path).mkdir(parents=True, exist_ok=True)
        self._session = session.Session(str(path))
        # One thread owns the session: chDB sessions are not meant for concurrent use, and running queries off the
        # event loop keeps the proxy answering while a batch is written.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chdb")

    async def _run(self, sql: str, fmt: str, params: Mapping[str, Any] | None) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._query, sql, fmt, params)

    def _query(self, sql: str, fmt: str, params: Mapping[str, Any] | None) -> Any:
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
        await loop.run_in_executor(self._executor, self._insert, table, dedup_token, json_each_row(rows))

    def _insert(self, table: str, dedup_token: str | None, data: bytes) -> None:
        if not hasattr(self._session, "send_insert"):  # a chDB without streaming inserts
            self._query(insert_statement(table, dedup_token) + "\n" + data.decode(), "CSV", None)
            return
        # A streaming insert takes the rows as bytes: no megabytes of text to decode, copy into the SQL and have the
        # query parser scan, which made a batch's insert take about twice as long and hold the GIL longer.
        with self._session.send_insert(insert_head(table, dedup_token), "JSONEachRow") as inserter:
            inserter.append(data)
            inserter.finish()

    async def select(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        result = await self._run(with_output_settings(sql), "JSON", params)
        return decode_json_result(result.bytes())

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._session.close)
        self._executor.shutdown(wait=True)
