"""Structured logs: one JSON object per line on stderr. Never pass a secret to a log call; what slips in anyway
(an exception naming a URL with its ``?key=``) is scrubbed from each line by the ``scrub`` the composition passes."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime

import orjson


class JsonFormatter(logging.Formatter):
    def __init__(self, scrub: Callable[[str], str] | None = None) -> None:
        super().__init__()
        self._scrub = scrub

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if self._scrub is not None:
            scrub = self._scrub
            entry = {key: scrub(value) if isinstance(value, str) else value for key, value in entry.items()}
        return orjson.dumps(entry, default=str).decode()


def configure(level: str = "INFO", scrub: Callable[[str], str] | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(scrub))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("uvicorn.access").setLevel("WARNING")
    # aiokafka logs every failed reconnect as an error, many a second while a broker is away; the bus reports the
    # outage itself (and its buffered, spilled and dropped events are metrics).
    logging.getLogger("aiokafka").setLevel("CRITICAL")
