"""Budgets and rate limits: what a profile says about how much its traffic may spend, and how fast.

A budget caps spend in USD over a calendar window in UTC (a day from 00:00, an ISO week from Monday 00:00, a month
from its 1st, or the whole time). A rate limit caps requests and tokens per minute (a clock minute). Each applies to a
scope: the whole profile, or each agent, each user, each Warden key going through it (each one its own counter).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Scope = Literal["profile", "agent", "user", "key"]
"""``profile``: all the profile's traffic together; ``agent`` / ``user``: each agent id (user id) on its own, requests
without one sharing one counter; ``key``: each Warden key on its own (requests without a key are not counted)."""
Period = Literal["day", "week", "month", "total"]
StoreUnavailable = Literal["open", "closed"]
"""What admission does when the counter store cannot answer: ``open`` admits uncounted, ``closed`` refuses (503)."""

SCOPES: tuple[Scope, ...] = ("profile", "agent", "user", "key")
DEFAULT_MAX_OUTPUT_TOKENS = 4096


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: Scope = "profile"
    period: Period = "month"
    usd: float = Field(gt=0, le=1e9)
    """The most the scope may spend in one window (reserved worst cases included while requests run)."""


class RateLimit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: Scope = "profile"
    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)
    """Input and output tokens together; a request reserves its worst case (input estimate + max output tokens)."""

    @model_validator(mode="after")
    def _limits_something(self) -> RateLimit:
        if self.requests_per_minute is None and self.tokens_per_minute is None:
            raise ValueError("set requests_per_minute, tokens_per_minute or both")
        return self


class SpendLimits(BaseModel):
    """The part of a profile that limits spend and rate (mixed into the profile's spec)."""

    budgets: list[Budget] = Field(default_factory=list, max_length=64)
    rate_limits: list[RateLimit] = Field(default_factory=list, max_length=64)
    default_max_output_tokens: int = Field(default=DEFAULT_MAX_OUTPUT_TOKENS, ge=1, le=10_000_000)
    """The output a request may produce when it names no ``max_tokens`` / ``max_completion_tokens`` /
    ``max_output_tokens`` / ``maxOutputTokens``: what admission reserves for it."""
    budget_store_unavailable: StoreUnavailable = "closed"
    rate_limit_store_unavailable: StoreUnavailable = "open"

    @property
    def limited(self) -> bool:
        return bool(self.budgets or self.rate_limits)
