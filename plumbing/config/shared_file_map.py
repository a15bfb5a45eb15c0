"""A replicated map that several processes on one machine share: the JSON snapshot and journal of ``FileMap`` (read and
written by the same functions), with every process following the others' changes.

``warden serve`` runs several proxy processes and a background one over one data directory; each holds the map in
memory and must see a change made by any of them (a profile through the API, a quarantine from the guard, the
provider-history buckets every proxy writes) within ``follow_interval_s``.

- A write takes the map's lock file (``<file>.lock``, ``flock`` exclusive), reads what the others appended since its
  last look, appends its own line and fsyncs: the journal is one ordered history that every process replays.
- Compaction (the journal folded into a new snapshot, once it outweighs the snapshot) happens under
  the same lock and is built from the files, not from one process's memory, so no other process's change is lost.
- A follower looks every ``follow_interval_s``: a new snapshot (another inode) means reload; a longer journal means
  replay the new lines. It takes the lock shared and never waits for it: a writer holding it means "look next time".

All file work runs in a worker thread, so a process's event loop never waits on the disk or on another's lock; the
in-memory map and the listeners change on the event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plumbing.config.base import InMemory, M
from plumbing.config.file_map import (
    changes,
    journal_entries,
    journal_line,
    journal_path,
    read_state,
    write_snapshot,
)

log = logging.getLogger(__name__)
FOLLOW_INTERVAL_S = 0.5
"""How often each process looks for the others' changes."""
MIN_JOURNAL_BYTES = 64 * 1024


@dataclass(frozen=True)
class _Position:
    """How far this process has read: the snapshot it loaded (inode, mtime) and the bytes of the journal after it."""

    snapshot: tuple[int, int] | None
    journal: tuple[int, int] | None  # (inode, bytes read)


@dataclass
class _Read:
    """What the files said since the last look: a whole new state, or journal entries to replay."""

    position: _Position
    state: dict[str, Any] | None  # raw JSON values: the snapshot with its journal replayed (a reload)
    entries: list[tuple[str, Any]]  # (key, raw JSON value or None) in order


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


class SharedFileMap(InMemory[M]):
    """Reads (``get``, ``values``, ``keys``) are memory only."""

    def __init__(self, path: Path, model: type[M], *, follow_interval_s: float = FOLLOW_INTERVAL_S) -> None:
        super().__init__()
        self.path = path
        self.journal_path = journal_path(path)
        self.lock_path = path.with_name(path.name + ".lock")
        self.model = model
        self.follow_interval_s = follow_interval_s
        self._position = _Position(None, None)
        self._follower: asyncio.Task[None] | None = None
        self._io = asyncio.Lock()
        read = self._read(self._position, exclusive=False, wait=True)
        assert read is not None
        self._take(read, notify=False)

    # -- writes -------------------------------------------------------------------------------------------------

    async def put(self, key: str, value: M) -> None:
        await self._write(key, value.model_dump(mode="json"))

    async def delete(self, key: str) -> bool:
        await self.refresh()
        if key not in self._items:
            return False
        await self._write(key, None)
        return True

    async def _write(self, key: str, raw: Any) -> None:
        async with self._io_lock():
            read = await asyncio.to_thread(self._append, self._position, key, raw)
            self._take(read, notify=True)

    def _append(self, position: _Position, key: str, raw: Any) -> _Read:
        """Under the exclusive lock: what the others wrote, then this change, durable; compaction when due."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked(exclusive=True, wait=True):
            read = self._read_unlocked(position)
            line = journal_line(key, raw)
            if _torn_tail(self.journal_path):
                line = b"\n" + line  # a writer died mid-line: never glue this change onto its torn one
            with open(self.journal_path, "ab") as journal:
                journal.write(line)
                journal.flush()
                os.fsync(journal.fileno())
            read.entries.append((key, raw))
            inode, done = read.position.journal or (self.journal_path.stat().st_ino, 0)
            read.position = _Position(read.position.snapshot, (inode, done + len(line)))
            if self._due():
                read = self._compact()
            return read

    def _due(self) -> bool:
        """Fold the journal once it outweighs the snapshot it changes (and ``MIN_JOURNAL_BYTES``): a write costs the
        same with ten keys or a million, and replaying the journal never costs more than reading the snapshot."""
        journal = self.journal_path.stat().st_size if self.journal_path.exists() else 0
        snapshot = self.path.stat().st_size if self.path.exists() else 0
        return journal >= max(MIN_JOURNAL_BYTES, snapshot)

    def _compact(self) -> _Read:
        """The files' whole state as a new snapshot (atomic replace), then the journal goes (lock held)."""
        state = read_state(self.path)
        write_snapshot(self.path, state, fsync=True)
        self.journal_path.unlink(missing_ok=True)
        return _Read(_Position(_identity(self.path), None), state, [])

    # -- following ----------------------------------------------------------------------------------------------

    async def refresh(self, wait: bool = False) -> None:
        """Take what the other processes wrote since the last look. ``wait``: for a writer holding the lock (else
        this look is skipped: the next one will do)."""
        async with self._io_lock():
            read = await asyncio.to_thread(self._read, self._position, False, wait)
            if read is not None:
                self._take(read, notify=True)

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self.follow_interval_s)
            try:
                await self.refresh()
            except Exception:  # the next look retries; memory keeps the last state meanwhile
                log.exception("shared map could not be read", extra={"fields": {"path": str(self.path)}})

    async def start(self) -> None:
        if self._follower is None:
            self._follower = asyncio.get_running_loop().create_task(self._follow())

    async def stop(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
            self._follower = None

    def close(self) -> None:
        return None

    # -- files (worker thread) ----------------------------------------------------------------------------------

    def _read(self, position: _Position, exclusive: bool, wait: bool) -> _Read | None:
        if not self.path.exists() and not self.journal_path.exists():
            return _Read(_Position(None, None), {} if position != _Position(None, None) else None, [])
        try:
            with self._locked(exclusive=exclusive, wait=wait):
                return self._read_unlocked(position)
        except BlockingIOError:
            return None

    def _read_unlocked(self, position: _Position) -> _Read:
        snapshot = _identity(self.path)
        journal = _identity(self.journal_path)
        same_journal = position.journal is not None and journal is not None and journal[0] == position.journal[0]
        if snapshot != position.snapshot or (position.journal is not None and not same_journal):
            state = read_state(self.path)
            size = self.journal_path.stat().st_size if journal is not None else 0
            return _Read(_Position(snapshot, (journal[0], size) if journal else None), state, [])
        if journal is None:
            return _Read(position, None, [])
        start = position.journal[1] if position.journal else 0
        with open(self.journal_path, "rb") as handle:
            handle.seek(start)
            data = handle.read()
        # Only whole lines: a line being written now is read next time.
        whole = data[: data.rfind(b"\n") + 1]
        return _Read(_Position(snapshot, (journal[0], start + len(whole))), None, journal_entries(whole))

    @contextlib.contextmanager
    def _locked(self, *, exclusive: bool, wait: bool) -> Any:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "ab") as lock:
            flags = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB)
            fcntl.flock(lock.fileno(), flags)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    # -- memory (event loop) ------------------------------------------------------------------------------------

    def _take(self, read: _Read, *, notify: bool) -> None:
        self._position = read.position
        if read.state is not None:
            before = self._items
            self._items = {}
            for key, raw in read.state.items():
                with contextlib.suppress(ValueError):
                    self._items[key] = self.model.model_validate(raw)
            if notify:
                for key, value in changes(before, self._items):
                    self._tell(key, value)
        for key, raw in read.entries:
            if raw is None:
                if self._items.pop(key, None) is not None and notify:
                    self._tell(key, None)
                continue
            try:
                value = self.model.model_validate(raw)
            except ValueError:
                log.warning("unreadable entry skipped", extra={"fields": {"path": str(self.path), "key": key}})
                continue
            if self._items.get(key) != value:
                self._items[key] = value
                if notify:
                    self._tell(key, value)

    def _io_lock(self) -> asyncio.Lock:
        return self._io


def _torn_tail(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() == 0:
                return False
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) != b"\n"
    except FileNotFoundError:
        return False
