"""SQL text shared by every store implementation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

# 64-bit integers as JSON numbers, so both engines hand back the same Python types.
OUTPUT_SETTINGS = "output_format_json_quote_64bit_integers = 0, output_format_json_quote_denormals = 0"


def insert_head(table: str, dedup_token: str | None) -> str:
    """``INSERT INTO table SETTINGS …``, without the format and the data.

    ``optimize_on_insert = 0``: the rows of one insert are already one per key (the logger folds a batch before
    writing it), so the insert-time merge would only sort them to find nothing to collapse; skipping it saves about a
    sixth of the insert's CPU. Repeats across inserts still fold in the background merges and under FINAL.

    Not ``deduplicate_blocks_in_dependent_materialized_views``: with it, a logger killed with SIGKILL and restarted
    left a batch's worth of rows out of the record (tests/distributed/test_nothing_lost.py, three runs in three)."""
    settings = "optimize_on_insert = 0"
    if dedup_token:
        if not dedup_token.replace("-", "").replace("_", "").replace(":", "").isalnum():
            raise ValueError("dedup token must be alphanumeric")
        settings += f", insert_deduplication_token = '{dedup_token}'"
    return f"INSERT INTO {table} SETTINGS {settings}"


def insert_statement(table: str, dedup_token: str | None) -> str:
    return f"{insert_head(table, dedup_token)} FORMAT JSONEachRow"


def json_each_row(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """Rows for ``FORMAT JSONEachRow``, which also reads a JSON array of objects: one call into orjson for the whole
    batch instead of one per row."""
    return orjson.dumps(list(rows) if not isinstance(rows, list) else rows)


def with_output_settings(sql: str) -> str:
    return f"{sql.rstrip().rstrip(';')} SETTINGS {OUTPUT_SETTINGS}"


def decode_json_result(payload: bytes | str) -> list[dict[str, Any]]:
    if not payload:
        return []
    return orjson.loads(payload)["data"]
