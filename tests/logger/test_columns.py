"""The logger's table of columns is the tables the migrations create: every column, in order, with its type. A column
added by a migration and not to the table of columns (or the other way round) fails here."""

from __future__ import annotations

from typing import Any

from plumbing.store.base import Store
from services.logger.columns import TABLES
from tests.support.store_runner import run_on_chdb


async def columns_of_the_migrated_tables(store: Store) -> dict[str, list[list[Any]]]:
    from plumbing.store.migrations import migrate

    await migrate(store)
    found: dict[str, list[list[Any]]] = {}
    for table in ("warden.interactions", "warden.violations"):
        database, name = table.split(".")
        rows = await store.select(
            "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String} "
            "ORDER BY position",
            {"db": database, "t": name},
        )
        found[table] = [[row["name"], row["type"]] for row in rows]
    return found


async def test_the_table_of_columns_is_the_tables_the_migrations_create(tmp_path):
    created = await run_on_chdb(tmp_path / "chdb", columns_of_the_migrated_tables)
    assert set(created) == set(TABLES)
    for table, columns in TABLES.items():
        assert created[table], f"the migrations create no {table}"
        assert [[c.name, c.type] for c in columns] == created[table], table


def test_every_column_is_filled_by_some_event():
    for table, columns in TABLES.items():
        assert all(column.fills for column in columns), table
