"""Events → rows of ``warden.interactions`` / ``warden.violations``, built from the columns table (``columns.py``).

One builder, two ways in. The usual way is the event's JSON document as the producers write it, decoded with orjson
and never made into a model: building the models was the largest part of the logger's work per event. Anything the
builder finds unusual (a field left out, another spelling of a time, a number as a string) goes through the event's
model instead, which accepts every form the contract allows and says why an event is invalid; the model's fields are
given to the same builder (an in-process event, published as a model, goes this way directly). So both ways store
the same row, and what the models accept but ClickHouse would refuse is refused with a reason here rather than
failing a batch.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Callable, Iterable
from typing import Any, get_args, get_origin

from pydantic import BaseModel

from schemas.events import RequestEvent, ResponseEvent, ViolationEvent
from schemas.folding import fold_by_interaction
from services.logger.columns import (
    CANONICAL_UUID,
    INTERACTIONS,
    VIOLATIONS,
    Column,
    Doc,
    Half,
    Read,
    Unusual,
    flag,
    optional_text,
    text,
)

Row = dict[str, Any]

_ANY_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}", re.I).fullmatch


Plan = tuple[tuple[str, str | None, Read], ...]


def _plan(columns: tuple[Column, ...], half: Half) -> Plan:
    return tuple((c.name, c.fills[half].field, c.fills[half].read) for c in columns if half in c.fills)


def _unusual() -> None:
    raise Unusual("is not in the usual form")


# The commonest readers, spelled inline in the compiled builders (the same checks as the functions).
_INLINE: dict[Read, str] = {
    text: "(_v if type(_v := {value}) is str else _unusual())",
    optional_text: "(_v if (_v := {value}) is None or type(_v) is str else _unusual())",
    flag: "(1 if (_v := {value}) is True else 0 if _v is False else _unusual())",
}


def _compile(half: Half, plan: Plan) -> Callable[[Doc], Row]:
    """The builder of one event's row as one dict display, compiled from its plan (as ``dataclasses`` compiles an
    ``__init__``): looping over the columns cost as much as reading them, and the logger does this for every event."""
    namespace: dict[str, Any] = {"_unusual": _unusual}
    entries = []
    for n, (name, field, read) in enumerate(plan):
        value = "doc" + "".join(f"[{part!r}]" for part in field.split(".")) if field else "doc"
        if read in _INLINE:
            entries.append(f"{name!r}: {_INLINE[read].format(value=value)}")
        else:
            namespace[f"read_{n}"] = read
            entries.append(f"{name!r}: read_{n}({value})")
    source = f"def build_{half}(doc):\n    return {{\n        " + ",\n        ".join(entries) + "\n    }\n"
    exec(compile(source, f"<{half} row builder>", "exec"), namespace)
    return namespace[f"build_{half}"]


_PLANS: dict[str, Plan] = {
    "request": _plan(INTERACTIONS, "request"),
    "response": _plan(INTERACTIONS, "response"),
    "violation": _plan(VIOLATIONS, "violation"),
}
_BUILDERS = {half: _compile(half, plan) for half, plan in _PLANS.items()}


def from_document(half: Half, doc: Doc) -> Row:
    """The row of an event document in the producers' form (or as a model holds it). Raises ``Unusual`` (or
    ``KeyError``/``TypeError`` for a field missing or of another shape) for anything else."""
    if doc.get("type") != half:
        raise Unusual(f"is not a {half} event")
    return _BUILDERS[half](doc)


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
    """The event's fields as the readers take them, nested models as dicts (cheaper than ``model_dump``, which copies
    every value); the interaction id spelled canonically (ClickHouse stores a UUID so whatever its spelling)."""
    doc = event.__dict__.copy()
    for name, many in _nested(type(event)):
        value = doc[name]
        doc[name] = [item.model_dump() for item in value] if many else value.model_dump()
    interaction_id = doc.get("interaction_id")
    if isinstance(interaction_id, str) and CANONICAL_UUID(interaction_id) is None and _ANY_UUID(interaction_id):
        doc["interaction_id"] = str(uuid.UUID(interaction_id))
    return doc


@functools.cache
def _nested(model: type[BaseModel]) -> tuple[tuple[str, bool], ...]:
    """The fields of a model that hold a model (False) or a list of models (True)."""
    found = []
    for name, info in model.model_fields.items():
        annotation, many = info.annotation, get_origin(info.annotation) is list
        if many:
            (annotation,) = get_args(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found.append((name, many))
    return tuple(found)


def _why(half: Half, doc: Doc) -> str:
    """The first column the document cannot fill, and why."""
    for name, field, read in _PLANS[half]:
        value = doc
        for part in field.split(".") if field else ():
            value = value[part]
        try:
            read(value)
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
