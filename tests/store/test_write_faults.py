"""A write the store could not make is an error, on both engines: with the store's disk full or its directory
read-only, an insert raises instead of reporting rows it never stored, and the same batch retried afterwards is stored
once, in the record and in every read copy the materialized views feed."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from plumbing.store.base import Store
from tests.support.clickhouse_server import ClickHouseServer
from tests.support.faults import Tmpfs, disk_full, read_only, require_faults
from tests.support.store_runner import ENGINES, run_on_chdb, run_on_server

READ_COPIES = ("interactions_by_agent", "interactions_by_user", "interactions_by_time", "interactions_by_id")


async def write_through_a_fault(store: Store, agent: str, fault: str, fault_dir: str) -> dict[str, Any]:
    import contextlib

    from plumbing.store.migrations import migrate
    from schemas.folding import fold_by_interaction
    from services.logger.rows import interaction_rows
    from tests.distributed.events import interaction

    batches = [
        fold_by_interaction(interaction_rows([e for n in range(200) for e in interaction(agent, b * 200 + n)]))
        for b in range(3)
    ]

    await migrate(store)
    await store.insert("warden.interactions", batches[0], dedup_token=f"{agent}-0")
    errors = []
    with disk_full(Path(fault_dir)) if fault == "disk_full" else read_only(Path(fault_dir)):
        for attempt in range(3):
            try:
                await store.insert("warden.interactions", batches[1], dedup_token=f"{agent}-1")
            except Exception as exc:  # what the logger sees: the batch is not acknowledged, and retried
                errors.append(str(exc)[:300])
            else:
                errors.append(f"attempt {attempt}: returned as if stored")
    with contextlib.suppress(Exception):
        await store.insert("warden.interactions", batches[1], dedup_token=f"{agent}-1")  # a retry after recovery
    await store.insert("warden.interactions", batches[1], dedup_token=f"{agent}-1")  # and one more, as a redelivery
    await store.insert("warden.interactions", batches[2], dedup_token=f"{agent}-2")
    counts = {}
    for table in ("interactions", *READ_COPIES):
        (row,) = await store.select(
            f"SELECT count() AS n, uniqExact(interaction_id) AS ids FROM warden.{table} FINAL "
            "WHERE agent_id = {agent:String}",
            {"agent": agent},
        )
        counts[table] = row
    return {"errors": errors, "counts": counts}


@pytest.mark.parametrize("fault", ["disk_full", "read_only"])
@pytest.mark.parametrize("engine", ENGINES)
async def test_a_write_the_store_cannot_make_raises_and_its_retry_stores_it_once(engine, fault, tmp_path):
    require_faults(tmp_path)
    agent = f"fault-{uuid.uuid4().hex[:8]}"
    with Tmpfs(tmp_path / "disk", 96 << 20) as disk:
        if engine == "chdb":
            target = disk / "chdb"
            out = await run_on_chdb(target, write_through_a_fault, agent=agent, fault=fault, fault_dir=str(disk))
        else:
            server = ClickHouseServer(workdir=disk / "server")
            server.start()
            try:
                # Read-only: the data, not the launcher's log and config around it.
                where = disk if fault == "disk_full" else server.data_dir
                out = await run_on_server(
                    server.url, write_through_a_fault, agent=agent, fault=fault, fault_dir=str(where)
                )
            finally:
                server.stop()
    assert len(out["errors"]) == 3
    assert not [e for e in out["errors"] if "returned as if stored" in e], out["errors"]
    if fault == "disk_full":
        assert all("NOT_ENOUGH_SPACE" in e or "No space left" in e for e in out["errors"]), out["errors"]
    for table, counts in out["counts"].items():
        assert counts == {"n": 600, "ids": 600}, (table, counts)  # nothing lost, nothing doubled
