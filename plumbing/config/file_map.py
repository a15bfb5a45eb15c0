"""A replicated map for one process: in memory, persisted to a JSON snapshot and a journal of the changes since.

A change appends one line to the journal (``<file>.journal``), so a write costs the same with ten keys or a million;
once the journal holds more lines than the map has keys, the map is written as a new snapshot (atomic replace) and
the journal starts again. Loading reads the snapshot, then replays the journal (a line torn by a crash is skipped).

The files' format (``read_snapshot``, ``read_journal``, ``journal_line``, ``write_snapshot``) is shared with
``SharedFileMap``, which keeps the same files for several processes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import orjson

from plumbing.config.base import InMemory, M

log = logging.getLogger(__name__)
MIN_JOURNAL_LINES = 256
"""The journal is folded into the snapshot only beyond this many lines (and beyond the number of keys)."""


def journal_path(path: Path) -> Path:
    return path.with_name(path.name + ".journal")


def journal_line(key: str, raw: Any) -> bytes:
    """One change as a journal line: ``raw`` is the value's JSON form, None for a deletion."""
    return orjson.dumps({"k": key, "v": raw}) + b"\n"


def journal_entries(data: bytes) -> list[tuple[str, Any]]:
    """The changes in journal bytes, in order: (key, raw JSON value or None)."""
    out: list[tuple[str, Any]] = []
    for line in data.splitlines():
        try:
            entry = orjson.loads(line)
            out.append((entry["k"], entry["v"]))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue  # torn by a crash mid-write: the change never returned to its writer
    return out


def read_snapshot(path: Path) -> dict[str, Any]:
    """The snapshot's raw JSON values (none when it does not exist); raises ``orjson.JSONDecodeError`` if unreadable."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    return orjson.loads(data or b"{}")


def read_journal(path: Path) -> list[tuple[str, Any]]:
    try:
        return journal_entries(path.read_bytes())
    except FileNotFoundError:
        return []


def read_state(path: Path) -> dict[str, Any]:
    """The raw JSON values the files hold: the snapshot, with its journal replayed."""
    state = read_snapshot(path)
    for key, raw in read_journal(journal_path(path)):
        if raw is None:
            state.pop(key, None)
        else:
            state[key] = raw
    return state


def write_snapshot(path: Path, state: Mapping[str, Any], *, fsync: bool) -> None:
    """``state`` (raw JSON values) as the new snapshot, replaced atomically: a reader sees the old one or this one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "wb") as handle:
        handle.write(orjson.dumps(state))
        handle.flush()
        if fsync:
            os.fsync(handle.fileno())
    os.replace(tmp, path)


def changes(before: Mapping[str, M], after: Mapping[str, M]) -> Iterator[tuple[str, M | None]]:
    """What a listener must be told when a map's state goes from ``before`` to ``after``: each key gone (None), then
    each key new or changed."""
    for key in before.keys() - after.keys():
        yield key, None
    for key, value in after.items():
        if before.get(key) != value:
            yield key, value


class FileMap(InMemory[M]):
    def __init__(self, path: Path, model: type[M], *, fsync: bool = True) -> None:
        """``fsync``: every change is on disk before ``put`` returns (the embedded source of truth); without it a
        change survives the process being killed but not the machine losing power (enough for a cached copy)."""
        super().__init__()
        self.path = path
        self.journal_path = journal_path(path)
        self.model = model
        self._fsync = fsync
        self._journal: IO[bytes] | None = None
        self._journal_lines = 0
        self.load()

    def load(self) -> None:
        self._items = {}
        try:
            self._items = {key: self.model.model_validate(raw) for key, raw in read_snapshot(self.path).items()}
        except (orjson.JSONDecodeError, ValueError):
            if self._fsync:
                raise  # the record itself: never start from nothing in its place
            # A copy written without fsync, cut by a power loss: the topic it copies fills it again.
            log.warning("local copy unreadable; starting empty", extra={"fields": {"path": str(self.path)}})
        self._journal_lines = 0
        for key, raw in read_journal(self.journal_path):
            if raw is None:
                self._items.pop(key, None)
            else:
                try:
                    self._items[key] = self.model.model_validate(raw)
                except ValueError:
                    continue  # a value this version cannot read: the key keeps its last readable one
            self._journal_lines += 1

    def apply(self, key: str, value: M | None) -> None:
        """Take a change in memory and on disk, and tell the listeners (used for local and remote changes)."""
        if value is None:
            self._items.pop(key, None)
        else:
            self._items[key] = value
        self._append(key, value)
        self._tell(key, value)

    def replace(self, items: Mapping[str, M]) -> None:
        """Take a whole new state at once (one snapshot write), telling the listeners about every key that changed."""
        before = self._items
        self._items = dict(items)
        self._snapshot()
        for key, value in changes(before, self._items):
            self._tell(key, value)

    async def put(self, key: str, value: M) -> None:
        self.apply(key, value)

    async def delete(self, key: str) -> bool:
        if key not in self._items:
            return False
        self.apply(key, None)
        return True

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
        self._journal.write(journal_line(key, None if value is None else value.model_dump(mode="json")))
        self._journal.flush()
        if self._fsync:
            os.fsync(self._journal.fileno())
        self._journal_lines += 1

    def _snapshot(self) -> None:
        """Write every key to a new snapshot, then drop the journal it includes."""
        write_snapshot(self.path, {k: v.model_dump(mode="json") for k, v in self._items.items()}, fsync=self._fsync)
        self.close()
        self.journal_path.unlink(missing_ok=True)
        self._journal_lines = 0
