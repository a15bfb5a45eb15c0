"""chDB's memory bounds (WARDEN_CHDB_MAX_MEMORY_BYTES, WARDEN_CHDB_MAX_QUERY_MEMORY_BYTES) reach chDB and hold: a query
that needs more fails with MEMORY_LIMIT_EXCEEDED instead of growing the process. Each case runs in a process of its
own (chDB keeps one engine per process, with the settings of its first session)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Grouping 5 million keys needs a few hundred megabytes; the bounds below allow far less.
PROGRAM = """
import asyncio, sys
from plumbing.settings import CommonSettings
from plumbing.store.factory import make_store

async def main():
    store = make_store(CommonSettings(data_dir=sys.argv[1]))
    try:
        rows = await store.select(
            "SELECT count() AS n FROM (SELECT number % 5000000 AS k, any(repeat('y', 50)) "
            "FROM numbers(30000000) GROUP BY k)"
        )
        print("ROWS", rows[0]["n"])
    except Exception as exc:
        print("FAILED", exc)
    finally:
        await store.close()

asyncio.run(main())
"""


def run(tmp_path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(tmp_path / "data")],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return done.stdout + done.stderr


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ("WARDEN_CHDB_MAX_MEMORY_BYTES", "(total) memory limit exceeded"),
        ("WARDEN_CHDB_MAX_QUERY_MEMORY_BYTES", "Query memory limit exceeded"),
    ],
)
def test_a_query_beyond_a_chdb_memory_bound_fails_instead_of_growing(tmp_path, setting: str, says: str) -> None:
    output = run(tmp_path, {setting: str(64 * 1024**2)})
    assert "FAILED" in output and "MEMORY_LIMIT_EXCEEDED" in output and says in output, output


def test_within_the_default_bounds_the_same_query_answers(tmp_path) -> None:
    output = run(tmp_path, {})
    assert "ROWS 5000000" in output, output
