"""The store: ClickHouse SQL, whichever engine runs it.

Two implementations share this interface: chDB (the ClickHouse engine in-process, embedded default) and a ClickHouse
server through clickhouse-connect. Both take the same DDL, the same ``{name:Type}`` parameterised SQL and return rows
decoded from ClickHouse's JSON output, so the layers above cannot tell them apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

Row = dict[str, Any]


class Store(Protocol):
    async def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns nothing (DDL, mutations)."""

    async def insert(self, table: str, rows: Sequence[Mapping[str, Any]], dedup_token: str | None = None) -> None:
        """Insert rows (JSONEachRow). Returns once they are durable. A retry with the same rows and token must not
        duplicate them."""

    async def select(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        """Run a query and return its rows as dicts (ClickHouse JSON types: 64-bit integers as numbers)."""

    async def close(self) -> None: ...
