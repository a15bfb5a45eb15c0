"""The distributed store: a ClickHouse server through clickhouse-connect."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

from plumbing.store.base import Row
from plumbing.store.sql import decode_json_result, json_each_row, with_output_settings


class ServerStore:
    def __init__(self, url: str) -> None:
        self._url = url
        self._client: Any = None

    async def _get(self) -> Any:
        if self._client is None:
            import clickhouse_connect

            parts = urlparse(self._url)
            self._client = await clickhouse_connect.get_async_client(
                host=parts.hostname or "localhost",
                port=parts.port or (8443 if parts.scheme == "https" else 8123),
                username=parts.username or "default",
                password=parts.password or "",
                secure=parts.scheme == "https",
                # Inserts wait for the data to be written: the logger acknowledges events only after that.
                settings={"async_insert": 0},
            )
        return self._client

    async def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        client = await self._get()
        await client.command(sql, parameters=dict(params) if params else None)

    async def insert(self, table: str, rows: Sequence[Mapping[str, Any]], dedup_token: str | None = None) -> None:
        if not rows:
            return
        client = await self._get()
        # Encoded off the event loop: a large batch takes milliseconds, which requests on the loop would wait for.
        block = await asyncio.to_thread(json_each_row, rows)
        await client.raw_insert(
            table,
            insert_block=block,
            fmt="JSONEachRow",
            # As on chDB (see plumbing.store.sql.insert_head): a batch is already one row per key.
            settings={
                # Also per insert: a server profile with async_insert on must not turn this into "queued, not yet
                # written" (and if the profile forbids changing it, the insert fails loudly instead).
                "async_insert": 0,
                "optimize_on_insert": 0,
                **({"insert_deduplication_token": dedup_token} if dedup_token else {}),
            },
        )

    async def select(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        client = await self._get()
        payload = await client.raw_query(
            with_output_settings(sql), parameters=dict(params) if params else None, fmt="JSON"
        )
        return decode_json_result(payload)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
