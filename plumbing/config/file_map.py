"""A replicated map for one process: in memory, persisted to a JSON file (atomic replace on every write)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Generic

import orjson

from plumbing.config.base import Listener, M


class FileMap(Generic[M]):
    def __init__(self, path: Path, model: type[M]) -> None:
        self.path = path
        self.model = model
        self._items: dict[str, M] = {}
        self._listeners: list[Listener] = []
        self.load()

    def load(self) -> None:
        if self.path.exists():
            raw = orjson.loads(self.path.read_bytes() or b"{}")
            self._items = {key: self.model.model_validate(value) for key, value in raw.items()}

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
        self._save()
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
        return None

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = orjson.dumps({k: v.model_dump(mode="json") for k, v in self._items.items()})
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
