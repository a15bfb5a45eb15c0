"""Recorded bodies made readable for the logs viewer: the conversation a request carried and the answer it got.

A record is read by the adapter of the provider it names, along the route it names (``providers.registry``), into
the common view (``schemas.view``): this module knows no wire format, so a new provider needs nothing here. A body
the adapter cannot read (cut by the record's size limit, not JSON, of an unexpected shape) yields ``None`` and the
page shows the body as recorded instead: a display must never fail because a body is unusual.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from providers.base import ProviderAdapter
from providers.common import NotJSON, loads_lenient, without_surrogates
from providers.registry import adapter_for
from schemas.view import CompletionView, Message

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Turn:
    """One message of the provider's request: the messages of the common view that came from it (a turn of text
    and tool results gives several)."""

    role: str
    index: int
    messages: list[Message] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Conversation:
    wire_format: str
    turns: list[Turn]
    tools: list[str]
    """Names of the tools the request declared."""


def read_request(record: Mapping[str, Any]) -> Conversation | None:
    """The conversation in the request as received, or None when its provider's adapter finds none in it."""
    body = _json(record.get("request_received"))
    if not isinstance(body, dict):
        return None
    adapter = _adapter(record)
    try:
        view = adapter.request_view(_route(record), body)
    except Exception:  # an adapter meeting a shape it does not expect: the raw body is shown instead
        log.debug("could not read a recorded request", exc_info=True)
        return None
    if not view.messages:
        return None
    tools = [tool.name for tool in view.tools if tool.name] + view.builtin_tools
    return Conversation(view.wire_format or adapter.name, group_turns(view.messages), tools)


def read_answer(record: Mapping[str, Any]) -> CompletionView | None:
    """The answer as the client got it, or None when there is nothing in it to show.

    The record says how to read it: an answer to a request that asked for a stream is the event stream, unless it is
    an error status (an error is one JSON body, whatever was asked)."""
    body = record.get("response_body")
    if not isinstance(body, str) or not body:
        return None
    adapter, route = _adapter(record), _route(record)
    status = record.get("status")
    streamed = bool(record.get("stream")) and not (isinstance(status, int) and status >= 400)
    try:
        if streamed:
            answer = adapter.stream_view(route, body.encode())
        else:
            parsed = _json(body)
            if parsed is None:
                return None
            answer = adapter.completion_view(route, parsed)
    except Exception:  # as for requests: the raw body is shown instead
        log.debug("could not read a recorded answer", exc_info=True)
        return None
    if not (answer.text or answer.tool_calls or answer.parts or answer.error is not None):
        return None
    return answer


def group_turns(messages: list[Message]) -> list[Turn]:
    """Messages of the same provider message in one turn; a turn of tool results only is the tools speaking,
    whatever role the wire format gives it."""
    turns: list[Turn] = []
    for message in messages:
        if not turns or turns[-1].index != message.index:
            turns.append(Turn(role=message.role, index=message.index))
        turn = turns[-1]
        if turn.role == "tool" and message.role != "tool":
            turn.role = message.role
        turn.messages.append(message)
    return turns


def pretty(value: Any) -> str:
    """JSON for display: indented, non-ASCII kept as is; strings that are not JSON objects stay as they are."""
    if isinstance(value, str):
        try:  # strict: a display of the bytes must not turn a NaN into null
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
        if not isinstance(parsed, dict | list):
            return value
        value = parsed
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    except TypeError:
        return repr(value)


def _json(text: Any) -> Any:
    """A recorded body as the clients' parsers read it (what the adapters expect), a lone surrogate written as the
    escape it was (no page can encode it); None when it is not JSON."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return without_surrogates(loads_lenient(text))
    except NotJSON:
        return None


def _adapter(record: Mapping[str, Any]) -> ProviderAdapter:
    return adapter_for(str(record.get("provider") or ""))


def _route(record: Mapping[str, Any]) -> str:
    return str(record.get("route") or "")
