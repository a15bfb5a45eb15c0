"""Events → rows of ``warden.interactions`` / ``warden.violations``, built from the columns table (``columns.py``).

One builder, two ways in. The usual way is the event's JSON document as the producers write it, decoded with orjson
and never made into a model: building the models was the largest part of the logger's work per event. Anything the
builder finds unusual (a field left out, another spelling of a time, a number as a string) goes through the event's
model instead, which accepts every form the contract allows and says why an event is invalid; the model is written
back out as the producers would write it and given to the same builder. So both ways store the same row, and what
the models accept but ClickHouse would refuse is refused with a reason here rather than failing a batch.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from schemas.events import RequestEvent, ResponseEvent, ViolationEvent
from schemas.folding import fold_by_interaction
from services.logger.columns import INTERACTIONS, VIOLATIONS, Column, Doc, Half, Read, Unusual

Row = dict[str, Any]

_ANY_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}", re.I).fullmatch


def _plan(columns: tuple[Column, ...], half: Half) -> tuple[tuple[str, str | None, Read], ...]:
    return tuple((c.name, c.fills[half].field, c.fills[half].read) for c in columns if half in c.fills)


_PLANS: dict[str, tuple[tuple[str, str | None, Read], ...]] = {
    "request": _plan(INTERACTIONS, "request"),
    "response": _plan(INTERACTIONS, "response"),
    "violation": _plan(VIOLATIONS, "violation"),
}


def from_document(half: Half, doc: Doc) -> Row:
    """The row of an event document in the producers' form. Raises ``Unusual`` (or ``KeyError``/``TypeError`` for a
    field missing or of another shape) for anything else."""
    if doc.get("type") != half:
        raise Unusual(f"is not a {half} event")
    return {name: read(doc if field is None else doc[field]) for name, field, read in _PLANS[half]}


class Unstorable(ValueError):
    """An event its model accepts and ClickHouse would refuse; the message says why."""


def from_model(event: BaseModel) -> Row:
    """The row of a validated event, or ``Unstorable``."""
    half: Half = getattr(event, "type", "")
    if half not in _PLANS:
        raise Unstorable(f"no table stores {type(event).__name__}")
    doc = _document(event)
    try:
        return from_document(half, doc)
    except Unusual:
        raise Unstorable(_why(half, doc)) from None
    except (TypeError, ValueError) as exc:  # e.g. tool-call arguments with an integer JSON cannot hold
        raise Unstorable(f"cannot store {type(event).__name__}: {str(exc)[:200]}") from None


def _document(event: BaseModel) -> Doc:
    """The event as its producers write it: times in UTC (a naive time is taken as UTC), the interaction id spelled
    canonically (ClickHouse stores a UUID so whatever its spelling)."""
    times = {k: _utc(v) for k, v in event.__dict__.items() if isinstance(v, datetime) and v.tzinfo is not UTC}
    doc = (event.model_copy(update=times) if times else event).model_dump(mode="json")
    interaction_id = doc.get("interaction_id")
    if isinstance(interaction_id, str) and _ANY_UUID(interaction_id):
        doc["interaction_id"] = str(uuid.UUID(interaction_id))
    return doc


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.utcoffset() is None else value.astimezone(UTC)


def _why(half: Half, doc: Doc) -> str:
    """The first column the document cannot fill, and why."""
    for name, field, read in _PLANS[half]:
        try:
            read(doc if field is None else doc[field])
        except Unusual as exc:
            return f"{name} {exc}"
    return f"not a {half} event"


def request_row(event: RequestEvent) -> Row:
    return from_model(event)


def response_row(event: ResponseEvent) -> Row:
    return from_model(event)


def violation_row(event: ViolationEvent) -> Row:
    return from_model(event)


def interaction_rows(events: Iterable[RequestEvent | ResponseEvent]) -> list[Row]:
    """One row per interaction: a request and its response in the same batch become one row, which is what the table
    would fold them into anyway, with half the rows to write and merge."""
    return fold_by_interaction(from_model(event) for event in events)
