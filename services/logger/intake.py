"""The logger's decoder: a delivery → the row it stores, or ``Undecodable`` with the reason its dead letter carries.

A payload from Kafka is decoded with orjson and made into its row straight from the document; one in any other form
goes through its model (``rows.py``), so what the models accept is stored, what they reject is dead-lettered with
their reason, and the document path only makes the usual case cheap. A published model (in-process) goes the model's
way directly.
"""

from __future__ import annotations

import orjson

from plumbing.bus.base import Delivery, Undecodable, topic_model
from schemas import topics
from services.logger import rows
from services.logger.columns import Half, Unusual

_HALVES: dict[str, Half] = {topics.REQUESTS: "request", topics.RESPONSES: "response", topics.VIOLATIONS: "violation"}


Record = tuple[Half, rows.Row]
"""A row and which event it comes from (and so its table). A plain tuple: a named one costs a Python-level call
per event."""


def decode(delivery: Delivery) -> Record:
    half = _HALVES.get(delivery.topic)
    if half is None:
        raise Undecodable(f"unexpected event on {delivery.topic}")
    if delivery.event is None and delivery.raw:
        try:
            doc = orjson.loads(delivery.raw)
        except orjson.JSONDecodeError:
            doc = None
        if type(doc) is dict:
            try:
                return half, rows.from_document(half, doc)
            except (KeyError, TypeError, Unusual):
                pass
    event = topic_model(delivery)
    if getattr(event, "type", None) != half:
        raise Undecodable(f"unexpected {type(event).__name__} on {delivery.topic}")
    try:
        return half, rows.from_model(event)
    except rows.Unstorable as exc:
        raise Undecodable(str(exc)) from None
