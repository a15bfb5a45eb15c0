"""Run one store scenario on either engine: chDB (in a child process on its own directory) or the ClickHouse server.

chDB serves one data directory per process and the test process already serves the shared Warden's, so a chDB
scenario runs in a child: ``python -m tests.support.store_runner chdb DIR module:function`` reads the keyword arguments
as JSON on stdin (an argument is limited to 128 KiB, a scenario's events are not) and prints the scenario's JSON
result. A server scenario runs in the test's own event loop against ``ServerStore``. A scenario is an
``async def scenario(store, **kwargs) -> JSON-able`` at module level, so both runs execute the very same code and the
test asserts on what it returns.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from plumbing.store.base import Store

Scenario = Callable[..., Awaitable[Any]]
ENGINES = ("chdb", "server")


def _name(scenario: Scenario) -> str:
    return f"{scenario.__module__}:{scenario.__qualname__}"


async def run_on_chdb(data_dir: Path, scenario: Scenario, **kwargs: Any) -> Any:
    args = [sys.executable, "-m", "tests.support.store_runner", "chdb", str(data_dir), _name(scenario)]
    proc = await asyncio.create_subprocess_exec(
        *args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(json.dumps(kwargs).encode()), timeout=300)
    if proc.returncode != 0:
        raise AssertionError(f"the scenario failed on chDB:\n{err.decode(errors='replace')[-4000:]}")
    return json.loads(out.decode().strip().splitlines()[-1])


async def run_on_server(url: str, scenario: Scenario, **kwargs: Any) -> Any:
    from plumbing.store.server_store import ServerStore

    store = ServerStore(url)
    try:
        return json.loads(json.dumps(await scenario(store, **kwargs), default=str))
    finally:
        await store.close()


async def _child(data_dir: str, name: str, kwargs: dict[str, Any]) -> None:
    from plumbing.store.chdb_store import ChdbStore

    module, _, function = name.partition(":")
    scenario = getattr(importlib.import_module(module), function)
    store: Store = ChdbStore(data_dir)
    try:
        result = await scenario(store, **kwargs)
    finally:
        await store.close()
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    _, engine, directory, scenario_name = sys.argv
    assert engine == "chdb"
    asyncio.run(_child(directory, scenario_name, json.loads(sys.stdin.read())))
