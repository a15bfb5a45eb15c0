"""Query a chDB data directory from a separate process (chDB serves one directory per process, and the test process
already serves the shared Warden's): ``python -m tests.support.chdb_query DIR SQL`` prints the rows as JSON."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def query(data_dir: Path, sql: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.chdb_query", str(data_dir), sql],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout)


async def _main(data_dir: str, sql: str) -> None:
    from plumbing.store.chdb_store import ChdbStore

    store = ChdbStore(Path(data_dir))
    try:
        print(json.dumps(await store.select(sql)))
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], sys.argv[2]))
