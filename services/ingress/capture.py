"""The first bytes of a body, kept while the whole of it passes through: what the record (and a judgement) may hold
of an answer of any size."""

from __future__ import annotations


class Capture:
    """Keeps chunks up to ``limit`` bytes (the last one cut to fit) and counts every byte offered."""

    __slots__ = ("_chunks", "held", "limit", "total")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        """Bytes kept: never more than ``limit``."""
        self.total = 0
        """Bytes offered."""
        self._chunks: list[bytes] = []

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.limit - self.held
        if room <= 0 or not chunk:
            return
        if len(chunk) > room:
            chunk = chunk[:room]
        self._chunks.append(chunk)
        self.held += len(chunk)

    @property
    def complete(self) -> bool:
        """Everything offered was kept."""
        return self.total == self.held

    def value(self) -> bytes:
        chunks = self._chunks
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
