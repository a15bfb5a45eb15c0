"""Applies the numbered DDL migrations in ``schemas/migrations`` once each, in order."""

from __future__ import annotations

import logging
import re
from importlib import resources

from plumbing.store.base import Store

log = logging.getLogger(__name__)

_LEDGER = """
CREATE TABLE IF NOT EXISTS warden.schema_migrations
(version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3))
ENGINE = ReplacingMergeTree ORDER BY version
"""


def migration_files() -> list[tuple[int, str, str]]:
    found = []
    for entry in resources.files("schemas").joinpath("migrations").iterdir():
        match = re.match(r"^(\d+)_.*\.sql$", entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text()))
    return sorted(found)


def statements(script: str) -> list[str]:
    """Split a migration into statements: each ends with ';' at the end of a line."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [part.strip() for part in re.split(r";\s*$", "\n".join(lines), flags=re.M) if part.strip()]


async def migrate(store: Store) -> list[str]:
    """Apply every migration not applied yet; returns the names applied now."""
    await store.execute("CREATE DATABASE IF NOT EXISTS warden")
    await store.execute(_LEDGER)
    done = {row["version"] for row in await store.select("SELECT version FROM warden.schema_migrations FINAL")}
    applied = []
    for version, name, script in migration_files():
        if version in done:
            continue
        for statement in statements(script):
            await store.execute(statement)
        await store.insert("warden.schema_migrations", [{"version": version, "name": name}])
        log.info("applied migration %s", name)
        applied.append(name)
    return applied


async def migrate_when_reachable(store: Store, max_wait_s: float = 5.0) -> list[str]:
    """``migrate``, retried with back-off while the store cannot be reached (a server still starting)."""
    import asyncio

    delay = 0.2
    while True:
        try:
            return await migrate(store)
        except Exception as exc:
            log.warning("store unreachable; retrying the migrations", extra={"fields": {"error": str(exc)[:300]}})
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_wait_s)
