"""Replicated configuration: a map of pydantic models that every instance holds in memory.

The hot path reads it without I/O (``get`` is a dict lookup); writes go through ``put``/``delete`` and reach every
instance within moments: a JSON file in the embedded default, a compacted Kafka topic in distributed mode. Both keep
a local copy on disk, so a restart knows the last state even before the broker answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)
Listener = Callable[[str, BaseModel | None], None]


class ReplicatedMap(Protocol, Generic[M]):
    def get(self, key: str) -> M | None: ...

    def values(self) -> list[M]: ...

    async def put(self, key: str, value: M) -> None:
        """Store ``value`` under ``key``; returns once it is durable."""

    async def delete(self, key: str) -> bool:
        """Remove ``key``; False when it was not there."""

    def listen(self, listener: Listener) -> None:
        """Call ``listener(key, value_or_None)`` on every change, whichever instance made it."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class InMemory(Generic[M]):
    """What the file-backed maps share in memory: the dict the hot path reads without I/O, and the listeners told of
    every change."""

    def __init__(self) -> None:
        self._items: dict[str, M] = {}
        self._listeners: list[Listener] = []

    def get(self, key: str) -> M | None:
        return self._items.get(key)

    def values(self) -> list[M]:
        return list(self._items.values())

    def keys(self) -> list[str]:
        return list(self._items)

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _tell(self, key: str, value: M | None) -> None:
        for listener in self._listeners:
            listener(key, value)
