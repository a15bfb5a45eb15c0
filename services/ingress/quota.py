"""What a request may take from its profile's budgets and rate limits, as pure functions: the charges admission
reserves, what a completed request really took, and how a refusal is said in each provider's own words.

- Budgets reserve the request's worst-case cost: its input (at most one token per byte of the body, a bound for any
  text tokenizer) and its output limit (the request's ``max_tokens`` and kin, else the profile's
  ``default_max_output_tokens``) at the model's prices. Amounts are micro-dollars.
- Rate limits reserve one request and the same worst-case tokens in the current clock minute.
- Windows are calendar windows in UTC; each counter's name carries its window, so a new window starts from zero.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from plumbing.counters.base import Charge, Refusal
from schemas.cost import Cost
from schemas.limits import Budget, Period, RateLimit, Scope
from schemas.profiles import Profile
from schemas.view import Usage
from services.pricing.catalogue import Rates
from services.pricing.cost import priced

MICRO = 1_000_000
OUTPUT_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")
"""OpenAI chat (new, then old), Anthropic and OpenAI chat, OpenAI Responses; Gemini's is in ``generationConfig``."""


@dataclass(frozen=True, slots=True)
class Who:
    """What a request is counted under."""

    profile_id: str
    agent_id: str
    user_id: str
    key_id: str
    """The Warden key's id ("" without one)."""


@dataclass(frozen=True, slots=True)
class Window:
    label: str
    """Part of the counter's name: the window's start (``2026-12-07``, ``2026-W49``, ``2026-12``, ``all``)."""
    start: datetime
    end: float
    """Epoch seconds (0: never)."""


def budget_window(period: Period, at: datetime) -> Window:
    return _window(period, (at - _EPOCH) // _DAY)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY = timedelta(days=1)


@functools.lru_cache(maxsize=64)
def _window(period: Period, days: int) -> Window:
    """Windows by UTC day number: the same few for every request of a day, worked out once."""
    day = _EPOCH + timedelta(days=days)
    if period == "day":
        return Window(day.date().isoformat(), day, (day + timedelta(days=1)).timestamp())
    if period == "week":
        start = day - timedelta(days=day.weekday())  # ISO weeks start on Monday
        year, week, _ = start.isocalendar()
        return Window(f"{year}-W{week:02d}", start, (start + timedelta(days=7)).timestamp())
    if period == "month":
        start = day.replace(day=1)
        following = (start + timedelta(days=32)).replace(day=1)
        return Window(f"{start:%Y-%m}", start, following.timestamp())
    return Window("all", datetime(1970, 1, 1, tzinfo=UTC), 0)


def scope_id(scope: Scope, who: Who) -> str | None:
    """Whose counter this is within the profile (None: the scope does not apply to the request)."""
    if scope == "profile":
        return ""
    if scope == "agent":
        return who.agent_id
    if scope == "user":
        return who.user_id
    return who.key_id or None


def budget_counter_for(profile_id: str, scope: Scope, ident: str, period: Period, window: Window) -> str:
    return f"budget|{profile_id}|{scope}|{ident}|{period}|{window.label}"


def rate_counter(kind: str, who: Who, scope: Scope, ident: str, minute: int) -> str:
    return f"{kind}|{who.profile_id}|{scope}|{ident}|{minute}"


FREE_ROUTES = ("count_tokens", ":countTokens", "input_tokens")
"""Token counting (Anthropic's ``messages/count_tokens``, Gemini's ``:countTokens``, OpenAI's
``responses/input_tokens``): free at the provider, and answered without usage, so nothing is reserved for it."""


def is_free(route: str) -> bool:
    return any(route.rstrip("/").endswith(free) for free in FREE_ROUTES)


def max_output_tokens(body: Any, route: str, default: int) -> int:
    """The most output a request may produce: what it asks for, else ``default``; none for embeddings."""
    if route.rstrip("/").endswith("embeddings"):
        return 0
    if isinstance(body, dict):
        for name in OUTPUT_FIELDS:
            value = body.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
        config = body.get("generationConfig") or body.get("generation_config")
        if isinstance(config, dict):
            value = config.get("maxOutputTokens", config.get("max_output_tokens"))
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return default


def worst_cost(rates: Rates, input_tokens: int, output_tokens: int) -> float:
    """USD of ``input_tokens`` and ``output_tokens`` at ``rates``: flat prices by float arithmetic (this runs for
    every request), tiered ones (chosen by the prompt's size) by the catalogue's own rule."""
    if isinstance(rates.input, Decimal) and isinstance(rates.output, Decimal):
        per_input, per_output = _per_token(rates.input, rates.output)
        return input_tokens * per_input + output_tokens * per_output
    return float(priced(rates, Usage(input_tokens=input_tokens, output_tokens=output_tokens)).usd or 0.0)


@functools.lru_cache(maxsize=1024)
def _per_token(input_mtok: Decimal, output_mtok: Decimal) -> tuple[float, float]:
    # A little above the exact rate: a worst case must not round below what the request may cost.
    return float(input_mtok) / 1e6 * (1 + 1e-9), float(output_mtok) / 1e6 * (1 + 1e-9)


def micro_usd(usd: float) -> int:
    return math.ceil(usd * MICRO - 1e-6)


@dataclass(frozen=True, slots=True)
class Plan:
    """The charges of one request and what they mean, kept to settle it and to explain a refusal."""

    charges: tuple[Charge, ...]
    meaning: dict[str, tuple[str, Scope, str, Budget | RateLimit]]
    """Counter name → (kind: ``budget`` / ``requests`` / ``tokens``, scope, scope id, the limit's setting)."""
    worst_usd: float
    worst_tokens: int
    input_bound: int
    output_bound: int


def plan(
    profile: Profile,
    who: Who,
    at: datetime,
    body: Any,
    body_bytes: int,
    route: str,
    rates: Rates | str | None,
) -> Plan | str:
    """The charges of a request through ``profile`` (its budgets, then its rate limits), or why it cannot be
    budgeted (a model without a price: its cost could never be counted). ``rates``: the model's prices (None: the
    request names no model, e.g. a listing: it costs nothing)."""
    free = is_free(route)
    output = 0 if free else max_output_tokens(body, route, profile.default_max_output_tokens)
    tokens = 0 if free else body_bytes + output
    charges: list[Charge] = []
    meaning: dict[str, tuple[str, Scope, str, Budget | RateLimit]] = {}
    worst = 0.0
    if profile.budgets:
        if isinstance(rates, str) and not free:
            return rates
        if rates is not None and not free:
            worst = worst_cost(rates, body_bytes, output)
        amount = micro_usd(worst) if worst > 0 else 0
        for budget in profile.budgets:
            ident = scope_id(budget.scope, who)
            if ident is None:
                continue
            window = budget_window(budget.period, at)
            name = budget_counter_for(who.profile_id, budget.scope, ident, budget.period, window)
            charges.append(Charge(name, amount, micro_usd(budget.usd), window.end))
            meaning[name] = ("budget", budget.scope, ident, budget)
    minute = int(at.timestamp()) // 60
    for limit in profile.rate_limits:
        ident = scope_id(limit.scope, who)
        if ident is None:
            continue
        end = (minute + 1) * 60
        if limit.requests_per_minute is not None:
            name = rate_counter("requests", who, limit.scope, ident, minute)
            charges.append(Charge(name, 1, limit.requests_per_minute, end))
            meaning[name] = ("requests", limit.scope, ident, limit)
        if limit.tokens_per_minute is not None:
            name = rate_counter("tokens", who, limit.scope, ident, minute)
            charges.append(Charge(name, tokens, limit.tokens_per_minute, end))
            meaning[name] = ("tokens", limit.scope, ident, limit)
    return Plan(tuple(charges), meaning, worst, tokens, body_bytes, output)


def actual(plan: Plan, status: int, usage: Usage, cost: Cost, relayed: bool) -> dict[str, int]:
    """What the request really took, by counter: its cost and tokens when known. Unknown: nothing when it failed
    before an answer was relayed (the provider charges no failed request), else its reservation stands (the
    provider may have charged for what it produced)."""
    known_cost = cost.usd
    tokens = None
    if usage.input_tokens is not None or usage.output_tokens is not None:
        tokens = (usage.input_tokens or 0) + (usage.output_tokens or 0)
    nothing = status >= 400 and not relayed
    out: dict[str, int] = {}
    for charge in plan.charges:
        kind = plan.meaning[charge.counter][0]
        if kind == "budget":
            if known_cost is not None:
                out[charge.counter] = micro_usd(known_cost) if known_cost > 0 else 0
            elif nothing:
                out[charge.counter] = 0
        elif kind == "tokens":
            if tokens is not None:
                out[charge.counter] = tokens
            elif nothing:
                out[charge.counter] = 0
    return out


# -- refusals -------------------------------------------------------------------------------------------------------


def _usd(micro: int) -> str:
    return f"${micro / MICRO:,.6f}".rstrip("0").rstrip(".") if micro % 10_000 else f"${micro / MICRO:,.2f}"


def _whose(scope: Scope, ident: str, profile_id: str) -> str:
    if scope == "profile":
        return f"profile {profile_id}"
    if scope == "key":
        return f"Warden key {ident} of profile {profile_id}"
    return f"{scope} {ident or '(none)'} in profile {profile_id}"


def budget_message(plan: Plan, refusal: Refusal, profile_id: str) -> str:
    _, scope, ident, setting = plan.meaning[refusal.charge.counter]
    assert isinstance(setting, Budget)
    window = refusal.charge.counter.rsplit("|", 1)[1]
    head = (
        f"budget exceeded: the {setting.period} budget of {_usd(refusal.charge.limit)} for "
        f"{_whose(scope, ident, profile_id)} ({'all time' if setting.period == 'total' else window + ' UTC'}) "
        f"has {_usd(refusal.used)} spent or reserved"
    )
    why = (
        f"; this request may cost up to {_usd(refusal.charge.amount)} ({plan.input_bound} input tokens at most and "
        f"{plan.output_bound} output tokens; lower max_tokens to ask for less)"
    )
    return head + why


def rate_message(plan: Plan, refusal: Refusal, profile_id: str, retry_after: int) -> str:
    kind, scope, ident, _ = plan.meaning[refusal.charge.counter]
    what = "requests" if kind == "requests" else "tokens"
    asked = "" if kind == "requests" else f"; this request may take {refusal.charge.amount} tokens"
    return (
        f"rate limit reached: {refusal.charge.limit} {what} per minute for {_whose(scope, ident, profile_id)}, "
        f"{refusal.used} used this minute{asked}; retry after {retry_after} s"
    )


def retry_after(refusal: Refusal, now: float) -> int:
    return max(1, math.ceil(refusal.charge.window_end - now))


def rate_headers(
    provider: str, status: dict[str, tuple[int, int]], reset_s: int, now: datetime
) -> list[tuple[bytes, bytes]]:
    """The provider's own rate-limit headers, so its SDK backs off on its own. ``status``: ``requests`` /
    ``tokens`` → (limit, remaining) of the limit that refused (and its sibling in the same scope)."""
    headers = [(b"retry-after", str(reset_s).encode())]
    if provider == "anthropic":
        reset = (now + timedelta(seconds=reset_s)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ").encode()
        for kind, (limit, remaining) in status.items():
            prefix = f"anthropic-ratelimit-{kind}-".encode()
            headers += [
                (prefix + b"limit", str(limit).encode()),
                (prefix + b"remaining", str(remaining).encode()),
                (prefix + b"reset", reset),
            ]
        return headers
    if provider == "gemini":
        return headers
    for kind, (limit, remaining) in status.items():
        headers += [
            (f"x-ratelimit-limit-{kind}".encode(), str(limit).encode()),
            (f"x-ratelimit-remaining-{kind}".encode(), str(remaining).encode()),
            (f"x-ratelimit-reset-{kind}".encode(), f"{reset_s}s".encode()),
        ]
    return headers


def gemini_retry_info(payload: bytes, retry_s: int) -> bytes:
    """Google's RESOURCE_EXHAUSTED answer carries a RetryInfo detail saying when to try again."""
    body = orjson.loads(payload)
    body["error"]["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_s}s"}]
    return orjson.dumps(body)
