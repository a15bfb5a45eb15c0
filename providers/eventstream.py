"""AWS's binary event-stream framing (``application/vnd.amazon.eventstream``), as Bedrock streams its answers.

A message is a prelude (total length, headers length, both big-endian u32, and the CRC32 of those 8 bytes), the
headers (name length u8, name, value type u8, value), the payload and the CRC32 of everything before it. Bedrock's
headers are strings (type 7, u16 length): ``:message-type`` (``event`` or ``exception``), ``:event-type`` or
``:exception-type``, ``:content-type``. Decoding is botocore's own parser (the one the SDK reads the stream with);
encoding, needed where Warden re-emits a stream it changed, is the few lines below.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import orjson
from botocore.eventstream import EventStreamBuffer, ParserError

from providers.sse import iter_events

CONTENT_TYPE = "application/vnd.amazon.eventstream"
_PRELUDE = struct.Struct(">II")
_STRING = 7
_MIN_MESSAGE = 16
"""A prelude (12 bytes) and the message CRC (4): the shortest message there is."""


def encode_message(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One event-stream message with string headers."""
    encoded = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        encoded += struct.pack(">B", len(raw_name)) + raw_name
        encoded += struct.pack(">BH", _STRING, len(raw_value)) + raw_value
    total = _MIN_MESSAGE + len(encoded) + len(payload)
    prelude = _PRELUDE.pack(total, len(encoded))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + bytes(encoded) + payload
    return body + struct.pack(">I", zlib.crc32(body))


def encode_event(event_type: str, payload: Any) -> bytes:
    """An ``event`` message carrying ``payload`` as JSON, as Bedrock sends each event of a stream."""
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return encode_message(headers, orjson.dumps(payload))


def encode_exception(exception_type: str, message: str) -> bytes:
    """An ``exception`` message (the SDK raises it as an ``EventStreamError`` with this code and message)."""
    headers = {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"}
    return encode_message(headers, orjson.dumps({"message": message}))


def split_messages(data: bytes) -> tuple[list[bytes], bytes]:
    """The whole messages at the start of ``data`` (each still encoded) and the incomplete rest. Only the lengths are
    read here: a message's checksums are checked where it is decoded."""
    messages: list[bytes] = []
    start = 0
    while len(data) - start >= _MIN_MESSAGE:
        total = _PRELUDE.unpack_from(data, start)[0]
        if total < _MIN_MESSAGE:
            # Not a message: everything left is passed on as it is (the client's parser reports it).
            messages.append(data[start:])
            return messages, b""
        if len(data) - start < total:
            break
        messages.append(data[start : start + total])
        start += total
    return messages, data[start:]


def iter_messages(stream: bytes) -> Iterator[tuple[dict[str, Any], bytes]]:
    """``(headers, payload)`` of every well-formed message in ``stream``, read by botocore's parser; stops at the first
    damaged or incomplete one."""
    buffer = EventStreamBuffer()
    buffer.add_data(stream)
    try:
        for message in buffer:
            yield message.headers, message.payload
    except ParserError:
        return


_EXCEPTION = "exception:"


def as_text(stream: bytes, render: Callable[[str, bytes], bytes] | None = None) -> bytes:
    """An event stream as text a record can hold (its bytes are binary: lengths and CRCs): one server-sent event per
    message, named by its event type (``exception:<type>`` for an exception), its payload as data
    (``render(event type, payload)`` when given). Bytes that are not whole messages are counted in a comment. Not an
    event stream (an error's JSON): returned as it is."""
    messages, rest = split_messages(stream)
    out: list[bytes] = []
    for raw in messages:
        parsed = next(iter_messages(raw), None)
        if parsed is None:
            rest = raw + rest
            break
        headers, payload = parsed
        if headers.get(":message-type") == "exception":
            name = _EXCEPTION + str(headers.get(":exception-type", ""))
        else:
            name = str(headers.get(":event-type", ""))
            payload = render(name, payload) if render is not None else payload
        out.append(b"event: " + name.encode() + b"\ndata: " + payload.replace(b"\n", b" ") + b"\n\n")
    if not out:
        return stream
    if rest:
        out.append(f": {len(rest)} more bytes that are not a whole event-stream message\n\n".encode())
    return b"".join(out)


def read_messages(stream: bytes) -> Iterator[tuple[dict[str, Any], bytes]]:
    """``(headers, payload)`` of every message of an event stream, in its binary framing or as ``as_text`` wrote it."""
    if not stream.startswith((b"event:", b":")):
        yield from iter_messages(stream)
        return
    for name, data in iter_events(stream):
        if name is None:
            continue
        if name.startswith(_EXCEPTION):
            headers = {":message-type": "exception", ":exception-type": name[len(_EXCEPTION) :]}
        else:
            headers = {":message-type": "event", ":event-type": name}
        yield headers, data.encode()


def json_payload(payload: bytes) -> dict[str, Any]:
    """A message's JSON payload as an object ({} when it is not one)."""
    try:
        parsed = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
