"""A store that keeps what the logger writes, and can fail like an unreachable ClickHouse."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class RecordingStore:
    """Keeps every insert; fails the first ``failures`` of them as an unreachable ClickHouse would."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.attempts: list[tuple[str, list[dict[str, Any]], str | None]] = []
        self.inserts: list[tuple[str, list[dict[str, Any]], str | None]] = []

    async def insert(self, table: str, rows: Sequence[Mapping[str, Any]], dedup_token: str | None = None) -> None:
        self.attempts.append((table, [dict(r) for r in rows], dedup_token))
        if self.failures:
            self.failures -= 1
            raise ConnectionError("ClickHouse is unreachable")
        self.inserts.append(self.attempts[-1])

    def rows(self, table: str = "warden.interactions") -> list[dict[str, Any]]:
        return [row for t, batch, _ in self.inserts if t == table for row in batch]
