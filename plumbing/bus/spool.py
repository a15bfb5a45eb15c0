"""A local spool on disk for events the broker could not take yet: JSON lines in numbered segment files.

Written only by the producer's background task, never on the request path.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import orjson

Record = tuple[str, str, bytes]
"""(topic, key, payload)"""


class Spool:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)

    def _segments(self) -> list[Path]:
        return sorted(self.directory.glob("segment-*.jsonl"))

    def size(self) -> int:
        return sum(p.stat().st_size for p in self._segments())

    def append(self, records: list[Record]) -> int:
        """Append records; returns how many were kept (the rest do not fit under max_bytes)."""
        lines = []
        budget = self.max_bytes - self.size()
        for topic, key, payload in records:
            line = orjson.dumps({"t": topic, "k": key, "p": base64.b64encode(payload).decode()}) + b"\n"
            if len(line) > budget:
                break
            budget -= len(line)
            lines.append(line)
        if lines:
            segments = self._segments()
            number = int(segments[-1].stem.split("-")[1]) + 1 if segments else 0
            path = self.directory / f"segment-{number:012d}.jsonl"
            with open(path, "wb") as handle:
                handle.writelines(lines)
                handle.flush()
                os.fsync(handle.fileno())
        return len(lines)

    def oldest(self) -> tuple[Path, list[Record]] | None:
        """The oldest segment and its records (a torn last line from a crash is skipped)."""
        for path in self._segments():
            records = list(_read(path))
            if records:
                return path, records
            path.unlink(missing_ok=True)
        return None

    def __bool__(self) -> bool:
        return bool(self._segments())


def _read(path: Path) -> Iterator[Record]:
    for line in path.read_bytes().splitlines():
        try:
            entry = orjson.loads(line)
            yield entry["t"], entry["k"], base64.b64decode(entry["p"])
        except (orjson.JSONDecodeError, KeyError, ValueError):
            continue
