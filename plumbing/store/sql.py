"""SQL text shared by every store implementation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

# 64-bit integers as JSON numbers, so both engines hand back the same Python types.
OUTPUT_SETTINGS = "output_format_json_quote_64bit_integers = 0, output_format_json_quote_denormals = 0"


def insert_statement(table: str, dedup_token: str | None) -> str:
    settings = ""
    if dedup_token:
        if not dedup_token.replace("-", "").replace("_", "").replace(":", "").isalnum():
            raise ValueError("dedup token must be alphanumeric")
        settings = f" SETTINGS insert_deduplication_token = '{dedup_token}'"
    return f"INSERT INTO {table}{settings} FORMAT JSONEachRow"


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
