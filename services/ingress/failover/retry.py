"""When an upstream attempt may be repeated elsewhere, and how long to wait before repeating it: pure functions.

The rule: only while nothing has reached the client, and only for failures that leave no completed work behind upstream
— the request could not be sent there at all, the connection could not be made, the upstream closed it without
answering, it answered 429 or 5xx, or a stream broke off before its first byte. Not repeated: a timeout after the
request was sent (the upstream may still be generating, and a completed generation is billed: a second one would be
paid twice and could act twice, e.g. append twice to a provider-held conversation), a non-streamed answer cut off
mid-body (the generation completed), a stream cut off after its first byte (the client already has part of the answer),
and any other 4xx (the request itself is at fault; another deployment would say the same).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Literal

ErrorClass = Literal[
    "connect", "disconnected", "timeout", "status_429", "status_5xx", "stream_broken", "status_4xx", "unsendable"
]
"""What went wrong with one attempt (None when it answered). ``unsendable``: the request was never sent there (the
deployment has no counterpart of its route, or holds no AWS credentials to sign it with)."""

RETRYABLE: frozenset[str] = frozenset(
    {"connect", "disconnected", "status_429", "status_5xx", "stream_broken", "unsendable"}
)

_RESET_HEADERS = (
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-reset",
    "anthropic-ratelimit-input-tokens-reset",
    "anthropic-ratelimit-output-tokens-reset",
)
MAX_WAIT_S = 3600.0
"""A provider's wait beyond this is read as this: the deadline cuts it far shorter anyway."""


def status_class(status: int) -> ErrorClass | None:
    """The error class of an answer's status; None for a success (or a redirect, passed on as it is)."""
    if status == 429:
        return "status_429"
    if status >= 500:
        return "status_5xx"
    if status >= 400:
        return "status_4xx"
    return None


def retryable(error: ErrorClass | None) -> bool:
    return error is not None and error in RETRYABLE


def backoff(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter (uniform in [0, min(cap, base·2^attempt)]): clients that failed together
    do not come back together. ``attempt`` counts from 0."""
    return rng.uniform(0.0, min(cap_s, base_s * (2 ** min(attempt, 30))))


def provider_wait(headers: Mapping[str, str], now: float) -> float | None:
    """How long the upstream asks to be left alone, in seconds, from its answer's headers, or None when it says
    nothing: ``retry-after-ms``, ``Retry-After`` (seconds or an HTTP-date), and the providers' rate-limit reset
    headers (OpenAI ``x-ratelimit-reset-*``: durations such as ``1s``, ``6m0s``, ``250ms``; Anthropic
    ``anthropic-ratelimit-*-reset``: RFC 3339 times). The longest wait any of them asks for wins. ``now``: the
    current Unix time, for the dates. ``headers``: names in lower case."""
    waits: list[float] = []
    value = headers.get("retry-after-ms")
    if value is not None:
        with contextlib.suppress(ValueError):
            waits.append(float(value) / 1000.0)
    value = headers.get("retry-after")
    if value is not None:
        waits.append(_seconds_or_date(value, now))
    for name in _RESET_HEADERS:
        value = headers.get(name)
        if value is not None:
            waits.append(_duration_or_time(value, now))
    found = [w for w in waits if w == w and w >= 0]  # NaN and unreadable (-1) values are ignored
    return min(max(found), MAX_WAIT_S) if found else None


def _seconds_or_date(value: str, now: float) -> float:
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, IndexError, OverflowError):
        return -1.0


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _duration_or_time(value: str, now: float) -> float:
    """``1s``, ``6m0s``, ``1h2m3.5s``, ``250ms``, a bare number of seconds, or an RFC 3339 time."""
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    total, number, i = 0.0, "", 0
    while i < len(value):
        char = value[i]
        if char.isdigit() or char == ".":
            number += char
            i += 1
            continue
        unit = "ms" if value.startswith("ms", i) else char
        if unit not in _UNITS or not number:
            return _rfc3339(value, now)
        try:
            total += float(number) * _UNITS[unit]
        except ValueError:
            return -1.0
        number, i = "", i + len(unit)
    return total if not number else _rfc3339(value, now)


def _rfc3339(value: str, now: float) -> float:

    try:
        return max(0.0, datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() - now)
    except ValueError:
        return -1.0
