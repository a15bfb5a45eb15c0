"""The producer's write-ahead log on disk: events the broker has not acknowledged yet, in numbered segment files.

Each record is a frame (CRC-32, sequence number, topic, key, payload) appended to the newest segment; a segment is
deleted once the broker has acknowledged every record in it. A frame torn by a crash fails its CRC and ends the
reading of its segment. The log never grows past ``max_bytes``: ``append`` keeps what fits and says how much.

One process owns a directory at a time (an advisory lock), so two producers never replay the same records. The
bus writes from a worker thread and reads on its event loop: a lock keeps the segment list consistent.

Worker processes of one service (``warden ingress --workers N``) each log in a directory of their own,
``<service dir>/worker-<i>``. At its start a producer's spool (``adopt_siblings``) takes over the records of every
sibling directory that no process holds (a worker of an earlier, larger N; the single process before workers were
used; or the reverse): they are appended to its own log, so a reduced N never leaves events on disk that nobody
replays.
"""

from __future__ import annotations

import base64
import fcntl
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson

Record = tuple[int, str, str, bytes]
"""(sequence number, topic, key, payload)"""
_FRAME = struct.Struct("<IQHHI")  # crc32 of what follows it, seq, topic length, key length, payload length
ADOPT_BATCH_BYTES = 8 * 1024 * 1024
"""Records taken over from a sibling directory are appended in batches of about this size (bounded memory)."""
LOCK_WAIT_S = 30.0
"""How long a worker's spool waits for its directory while a sibling that started at the same moment takes its records
over (a directory of a single process never waits: two processes on one directory is a mistake, said at once)."""
WORKER_PREFIX = "worker-"
SEGMENT_BYTES = 16 * 1024 * 1024
"""A segment is closed (and a new one begun) beyond this size, so acknowledged records leave the disk in pieces."""


class SpoolLocked(RuntimeError):
    """Another process uses this spool directory (each process needs a data directory of its own)."""


@dataclass
class _Segment:
    first: int
    path: Path
    size: int = 0
    last: int = -1
    handle: IO[bytes] | None = field(default=None, repr=False)


class Spool:
    def __init__(
        self, directory: Path, max_bytes: int, segment_bytes: int = SEGMENT_BYTES, *, adopt_siblings: bool = False
    ) -> None:
        """``adopt_siblings``: at ``open``, take over the logs of the sibling directories no process holds (a
        producer's log, whose records nobody else would replay), and wait for a worker directory a sibling is
        taking over at that moment."""
        self.directory = directory
        self.adopt_siblings = adopt_siblings
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._segments: list[_Segment] = []
        self._lock = threading.Lock()
        self._dir_lock: IO[bytes] | None = None
        self._cursor: tuple[int, int, int] | None = None  # (segment first seq, byte offset, next seq there)
        self.next_seq = 0
        self.adopted = 0
        """Records taken over from sibling directories at ``open``."""

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def open(self) -> tuple[int, int] | None:
        """Lock the directory and find what a previous run left; returns the range of sequence numbers to replay."""
        wait = LOCK_WAIT_S if self.adopt_siblings and self.directory.name.startswith(WORKER_PREFIX) else 0.0
        lock = _lock(self.directory, wait)
        if lock is None:
            raise SpoolLocked(f"{self.directory} is used by another process; give each one its own data directory")
        self._dir_lock = lock
        self._segments = []
        for path in sorted(self.directory.glob("wal-*.log")):
            self._segments.append(_Segment(int(path.stem.split("-")[1]), path, path.stat().st_size))
        if self._segments:
            last = self._segments[-1]
            last.last = max((frame[0] for frame in _frames(last.path)), default=last.first - 1)
            self.next_seq = last.last + 1
        self._adopt_legacy()
        for sibling in siblings(self.directory) if self.adopt_siblings else ():
            self.adopted += self._adopt(sibling)
        if not self._segments:
            return None
        return self._segments[0].first, self.next_seq - 1

    def close(self) -> None:
        with self._lock:
            for segment in self._segments:
                _close(segment)
        if self._dir_lock is not None:
            self._dir_lock.close()
            self._dir_lock = None

    # -- writing (worker thread) -------------------------------------------------------------------------------

    def append(self, records: list[Record], sync: bool = True) -> int:
        """Append records in order (their sequence numbers ascending) and fsync; returns how many were kept: those
        that do not fit under ``max_bytes`` are not written, nor any after them."""
        with self._lock:
            size = self.size()
            frames: list[bytes] = []
            for seq, topic, key, payload in records:
                frame = _frame(seq, topic, key, payload)
                if size + len(frame) > self.max_bytes:
                    break
                size += len(frame)
                frames.append(frame)
            if not frames:
                return 0
            kept = len(frames)
            segment = self._current(records[0][0])
            start = 0
            for n, frame in enumerate(frames):
                if segment.size >= self.segment_bytes and n > start:
                    self._write(segment, frames[start:n], records[n - 1][0], sync)
                    segment, start = self._current(records[n][0], rotate=True), n
                segment.size += len(frame)
            self._write(segment, frames[start:], records[kept - 1][0], sync)
            self.next_seq = max(self.next_seq, records[kept - 1][0] + 1)
            return kept

    def _current(self, first: int, rotate: bool = False) -> _Segment:
        if self._segments and self._segments[-1].handle is not None and not rotate:
            return self._segments[-1]
        if self._segments:
            _close(self._segments[-1])
        segment = _Segment(first, self.directory / f"wal-{first:020d}.log")
        segment.handle = open(segment.path, "ab", buffering=0)  # noqa: SIM115 - the open segment
        self._segments.append(segment)
        # The new file's name must survive a power loss too, not only its contents.
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return segment

    @staticmethod
    def _write(segment: _Segment, frames: list[bytes], last: int, sync: bool) -> None:
        assert segment.handle is not None
        segment.handle.write(b"".join(frames))
        if sync:
            os.fsync(segment.handle.fileno())
        segment.last = last

    # -- reading and releasing (event loop) --------------------------------------------------------------------

    def read(self, first: int, last: int, max_records: int, max_bytes: int) -> list[Record]:
        """Records with ``first <= seq <= last`` in order, up to the limits (at least one)."""
        out: list[Record] = []
        taken = 0
        with self._lock:
            segments = [s for i, s in enumerate(self._segments) if self._upper(i) >= first and s.first <= last]
            for segment in segments:
                offset = 0
                if self._cursor is not None and self._cursor[0] == segment.first and self._cursor[2] <= first:
                    offset = self._cursor[1]
                for seq, topic, key, payload, end in _frames(segment.path, offset):
                    if seq < first:
                        continue
                    if seq > last or len(out) >= max_records or (out and taken + len(payload) > max_bytes):
                        return out
                    out.append((seq, topic, key, payload))
                    taken += len(payload)
                    self._cursor = (segment.first, end, seq + 1)
        return out

    def release(self, through: int) -> None:
        """Delete every segment whose records are all acknowledged (sequence numbers up to ``through``)."""
        with self._lock:
            while self._segments and self._upper(0) <= through:
                segment = self._segments.pop(0)
                _close(segment)
                segment.path.unlink(missing_ok=True)

    def _upper(self, index: int) -> int:
        """The highest sequence number segment ``index`` may hold."""
        if index + 1 < len(self._segments):
            return self._segments[index + 1].first - 1
        return self._segments[index].last

    def size(self) -> int:
        return sum(s.size for s in self._segments)

    def __bool__(self) -> bool:
        return bool(self._segments)

    def _adopt_legacy(self) -> None:
        """Records an earlier version spilled as JSON lines join the log (then their files go)."""
        for path in sorted(self.directory.glob("segment-*.jsonl")):
            records: list[Record] = []
            for line in path.read_bytes().splitlines():
                try:
                    entry = orjson.loads(line)
                    records.append((self.next_seq, entry["t"], entry["k"], base64.b64decode(entry["p"])))
                    self.next_seq += 1
                except (orjson.JSONDecodeError, KeyError, ValueError):
                    continue
            if records:
                self.append(records)
            path.unlink()

    def _adopt(self, directory: Path) -> int:
        """Append the records of ``directory`` (a sibling no process holds) to this log, then delete its segments;
        returns how many were kept. A held directory is left alone: its owner replays it."""
        lock = _lock(directory, 0.0, create=False)
        if lock is None:
            return 0
        kept = 0
        try:
            for path in sorted(directory.glob("wal-*.log")):
                batch: list[Record] = []
                size = 0
                for _, topic, key, payload, _ in _frames(path):
                    batch.append((self.next_seq + len(batch), topic, key, payload))
                    size += len(payload)
                    if size >= ADOPT_BATCH_BYTES:
                        kept += self.append(batch)
                        batch, size = [], 0
                if batch:
                    kept += self.append(batch)
                # Only once its records are in this log (fsynced): a crash in between replays them twice, which the
                # consumers fold, rather than never.
                path.unlink()
        finally:
            lock.close()
        return kept


def siblings(directory: Path) -> list[Path]:
    """The other spool directories of the same service: its single-process directory and its workers' ones."""
    root = directory.parent if directory.name.startswith(WORKER_PREFIX) else directory
    found = [root, *sorted(root.glob(f"{WORKER_PREFIX}*"))] if root.is_dir() else []
    return [path for path in found if path.is_dir() and path != directory]


def worker_directory(root: Path, index: int) -> Path:
    """Where worker ``index`` of the service whose spool directory is ``root`` logs."""
    return root / f"{WORKER_PREFIX}{index}"


def _lock(directory: Path, wait_s: float, *, create: bool = True) -> IO[bytes] | None:
    """The directory's lock, held (``flock``), or None if another process holds it for longer than ``wait_s``."""
    if create:
        directory.mkdir(parents=True, exist_ok=True)
    try:
        lock = open(directory / "lock", "ab")  # noqa: SIM115 - held for the spool's lifetime
    except OSError:
        return None
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return lock
        except BlockingIOError:
            if time.monotonic() >= deadline:
                lock.close()
                return None
            time.sleep(0.05)


def _frame(seq: int, topic: str, key: str, payload: bytes) -> bytes:
    topic_b, key_b = topic.encode(), key.encode()
    body = struct.pack("<QHHI", seq, len(topic_b), len(key_b), len(payload)) + topic_b + key_b + payload
    return struct.pack("<I", zlib.crc32(body)) + body


def _frames(path: Path, offset: int = 0) -> Iterator[tuple[int, str, str, bytes, int]]:
    """The frames of a segment from ``offset`` (each with the offset after it); stops at the first torn or corrupt
    one."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below, also when the caller stops early
    except FileNotFoundError:
        return
    with handle:
        handle.seek(offset)
        while True:
            header = handle.read(_FRAME.size)
            if len(header) < _FRAME.size:
                return
            crc, seq, topic_len, key_len, payload_len = _FRAME.unpack(header)
            rest = handle.read(topic_len + key_len + payload_len)
            if len(rest) < topic_len + key_len + payload_len or zlib.crc32(rest, zlib.crc32(header[4:])) != crc:
                return
            offset += len(header) + len(rest)
            topic = rest[:topic_len].decode()
            key = rest[topic_len : topic_len + key_len].decode()
            yield seq, topic, key, rest[topic_len + key_len :], offset


def _close(segment: _Segment) -> None:
    if segment.handle is not None:
        segment.handle.close()
        segment.handle = None
