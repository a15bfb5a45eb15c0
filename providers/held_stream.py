"""Holding tool calls back in a streamed answer until a policy has judged them.

Events pass through as they arrive until the first one that carries a tool call; from there on, events are held.
When the stream ends the ingress either releases the held events unchanged (the calls were allowed) or replaces them
with a refusal: a protocol-correct end of the stream that turns the answer into a plain text turn ended normally.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


class HeldStream(ABC):
    def __init__(self) -> None:
        self._pending = b""
        self.held: list[bytes] = []

    @property
    def holding(self) -> bool:
        return bool(self.held)

    def feed(self, chunk: bytes) -> bytes:
        """Bytes that may reach the client now."""
        self._pending += chunk
        out: list[bytes] = []
        events, self._pending = self.split(self._pending)
        for event in events:
            if self.held or self.starts_hold(event):
                self.held.append(event)
            else:
                out.append(event)
                self.passed(event)
        return b"".join(out)

    def split(self, data: bytes) -> tuple[list[bytes], bytes]:
        """The whole events at the start of ``data`` and the incomplete rest. Server-sent events by default; a
        provider with a framing of its own (AWS's binary event stream) splits its way."""
        events: list[bytes] = []
        start = 0
        for match in _EVENT_END.finditer(data):
            events.append(data[start : match.end()])
            start = match.end()
        return events, data[start:]

    def release(self) -> bytes:
        """The held events unchanged, and whatever incomplete tail is left."""
        return b"".join(self.held) + self._pending

    def refuse(self, text: str) -> bytes:
        """Instead of the held events: the end of a text turn saying ``text``."""
        return self.refusal_events(self.held, text)

    def passed(self, event: bytes) -> None:
        """Called for every event let through before the hold, in order: what the client has already seen (block
        indexes, sequence numbers…) constrains the refusal. Nothing to note by default."""
        return None

    @abstractmethod
    def starts_hold(self, event: bytes) -> bool:
        """Whether this event carries (the start of) a tool call, so it and everything after must wait."""

    @abstractmethod
    def refusal_events(self, held: list[bytes], text: str) -> bytes:
        """Events that end the stream as a text turn saying ``text``, built from what was held (ids, usage)."""
