"""A replicated map for one process: in memory, persisted to a JSON snapshot and a journal of the changes since.

A change appends one line to the journal (``<file>.journal``), so a write costs the same with ten keys or a million;
once the journal holds more lines than the map has keys, the map is written as a new snapshot (atomic replace) and
the journal starts again. Loading reads the snapshot, then replays the journal (a line torn by a crash is skipped).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Generic

import orjson

from plumbing.config.base import Listener, M

MIN_JOURNAL_LINES = 256
"""The journal is folded into the snapshot only beyond this many lines (and beyond the number of keys)."""


class FileMap(Generic[M]):
    def __init__(self, path: Path, model: type[M], *, fsync: bool = True) -> None:
        """``fsync``: every change is on disk before ``put`` returns (the embedded source of truth); without it a
        change survives the process being killed but not the machine losing power (enough for a cached copy)."""
        self.path = path
        self.journal_path = path.with_name(path.name + ".journal")
        self.model = model
        self._fsync = fsync
        self._items: dict[str, M] = {}
        self._listeners: list[Listener] = []
        self._journal: IO[bytes] | None = None
        self._journal_lines = 0
        self.load()

    def load(self) -> None:
        self._items = {}
        if self.path.exists():
            raw = orjson.loads(self.path.read_bytes() or b"{}")
            self._items = {key: self.model.model_validate(value) for key, value in raw.items()}
        self._journal_lines = 0
        if self.journal_path.exists():
            for line in self.journal_path.read_bytes().splitlines():
                try:
                    entry = orjson.loads(line)
                    key, value = entry["k"], entry["v"]
                    if value is None:
                        self._items.pop(key, None)
                    else:
                        self._items[key] = self.model.model_validate(value)
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    continue  # torn by a crash mid-write: the change never returned to its writer
                self._journal_lines += 1

    def get(self, key: str) -> M | None:
        return self._items.get(key)

    def values(self) -> list[M]:
        return list(self._items.values())

    def keys(self) -> list[str]:
        return list(self._items)

    def apply(self, key: str, value: M | None) -> None:
        """Take a change in memory and on disk, and tell the listeners (used for local and remote changes)."""
        if value is None:
            self._items.pop(key, None)
        else:
            self._items[key] = value
        self._append(key, value)
        for listener in self._listeners:
            listener(key, value)

    def replace(self, items: Mapping[str, M]) -> None:
        """Take a whole new state at once (one snapshot write), telling the listeners about every key that changed."""
        before = self._items
        self._items = dict(items)
        self._snapshot()
        for key in before.keys() - self._items.keys():
            for listener in self._listeners:
                listener(key, None)
        for key, value in self._items.items():
            if before.get(key) != value:
                for listener in self._listeners:
                    listener(key, value)

    async def put(self, key: str, value: M) -> None:
        self.apply(key, value)

    async def delete(self, key: str) -> bool:
        if key not in self._items:
            return False
        self.apply(key, None)
        return True

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self.close()

    def close(self) -> None:
        if self._journal is not None:
            with contextlib.suppress(OSError):
                self._journal.close()
            self._journal = None

    def _append(self, key: str, value: M | None) -> None:
        if self._journal_lines >= max(MIN_JOURNAL_LINES, len(self._items)):
            self._snapshot()
            return
        if self._journal is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._journal = open(self.journal_path, "ab")  # noqa: SIM115 - held open across changes
        line = orjson.dumps({"k": key, "v": None if value is None else value.model_dump(mode="json")})
        self._journal.write(line + b"\n")
        self._journal.flush()
        if self._fsync:
            os.fsync(self._journal.fileno())
        self._journal_lines += 1

    def _snapshot(self) -> None:
        """Write every key to a new snapshot, then drop the journal it includes."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = orjson.dumps({k: v.model_dump(mode="json") for k, v in self._items.items()})
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            if self._fsync:
                os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        self.close()
        self.journal_path.unlink(missing_ok=True)
        self._journal_lines = 0
