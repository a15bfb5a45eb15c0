"""A delivery → the row it stores, or why it cannot be stored (the reason its dead letter carries).

The fast path decodes the payload with orjson and builds the row from the document (``json_rows``). An event in any
other form goes through its model, as every event once did, and becomes a row through ``rows.py``: so what the models
accept is stored, what they reject is dead-lettered with their reason, and the fast path only makes the usual case
cheap.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
from pydantic import BaseModel, ValidationError

from plumbing.bus.base import Delivery
from schemas import topics
from schemas.events import TOPIC_MODELS, RequestEvent, ResponseEvent, ViolationEvent
from services.logger import json_rows, rows

Row = json_rows.Row

_FAST: dict[str, Callable[[json_rows.Doc], Row | None]] = {
    topics.REQUESTS: json_rows.request_row,
    topics.RESPONSES: json_rows.response_row,
    topics.VIOLATIONS: json_rows.violation_row,
}


def to_row(delivery: Delivery) -> Row | str:
    """The delivery's row, or the reason it cannot be stored."""
    fast = _FAST.get(delivery.topic)
    if fast is None:
        return f"unexpected event on {delivery.topic}"
    if delivery.event is None and delivery.error is None and delivery.raw:
        try:
            doc = orjson.loads(delivery.raw)
        except orjson.JSONDecodeError:
            doc = None
        if type(doc) is dict:
            row = fast(doc)
            if row is not None:
                return row
    return _through_model(delivery)


def _through_model(delivery: Delivery) -> Row | str:
    event = delivery.event
    if event is None:
        if delivery.error is not None:
            return delivery.error
        model = TOPIC_MODELS[delivery.topic]
        try:
            event = model.model_validate_json(delivery.raw or b"")
        except ValidationError as exc:
            return f"invalid {model.__name__}: {_summary(exc)}"
    try:
        row = _model_row(delivery.topic, event)
    except (TypeError, ValueError) as exc:  # e.g. tool-call arguments with an integer JSON cannot hold
        return f"cannot store {type(event).__name__}: {str(exc)[:200]}"
    if row is None:
        return f"unexpected {type(event).__name__} on {delivery.topic}"
    return json_rows.unstorable(row) or row


def _model_row(topic: str, event: BaseModel) -> Row | None:
    if topic == topics.REQUESTS and isinstance(event, RequestEvent):
        return rows.request_row(event)
    if topic == topics.RESPONSES and isinstance(event, ResponseEvent):
        return rows.response_row(event)
    if topic == topics.VIOLATIONS and isinstance(event, ViolationEvent):
        return rows.violation_row(event)
    return None


def _summary(exc: ValidationError) -> str:
    """The first few errors, where and what, without the input (which may hold megabytes of body)."""
    found = exc.errors(include_url=False, include_input=False)
    text = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(event)'}: {e['msg']}" for e in found[:3])
    return text + (f"; and {len(found) - 3} more" if len(found) > 3 else "")
