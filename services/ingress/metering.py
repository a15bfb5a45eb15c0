"""Admission by budget and rate limit, at the edge: reserve a request's charges (``quota.plan``) in the counter store
before it leaves, settle them with what it really cost once it is priced, and say a refusal in the provider's shape.

When the store cannot answer, each profile says what to do: ``budget_store_unavailable`` (default ``closed``: refuse
with 503) and ``rate_limit_store_unavailable`` (default ``open``: admit uncounted); both outcomes are counted. The
client is told only that the counters are unavailable: the reason (which may name the store's host) is logged.

Settling waits for nobody: the table settles at once; a store over the network (Redis) settles in a task, and the
tasks waiting are bounded in bytes (``pending_max_bytes``): beyond it a settlement is dropped and counted, its
reservation standing until its window ends (the error is on the side of spending less).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from plumbing.counters.base import Counters, Refusal, Reservation
from providers.base import ProviderAdapter, error_kind
from schemas.cost import Cost
from schemas.profiles import Profile
from schemas.view import Usage
from services.ingress import quota
from services.ingress.metrics import IngressMetrics
from services.pricing.catalogue import Catalogue

log = logging.getLogger(__name__)

PENDING_MAX_BYTES = 1024 * 1024
UNAVAILABLE_MESSAGE = (
    "the counters of this profile's {what} are unavailable, and the profile fails closed: it refuses requests until "
    "they are back"
)
PENDING_TASK_BYTES = 512
"""What one waiting settlement holds besides its counters' names (the task, its coroutine, the amounts)."""


def pending_bytes(reservation: Reservation) -> int:
    return PENDING_TASK_BYTES + sum(len(charge.counter) + 64 for charge in reservation.charges)


@dataclass(slots=True)
class Refused:
    status: int
    message: str
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    retry_after: int | None = None

    def payload(self, adapter: ProviderAdapter) -> bytes:
        body = adapter.error_body(self.status, self.message, error_kind(self.status))
        if adapter.name == "gemini" and self.retry_after is not None:
            body = quota.gemini_retry_info(body, self.retry_after)
        return body


class Held:
    """One admitted request's reservation: settled once, when its answer is priced (or released, if it never
    left)."""

    __slots__ = ("_meter", "_plan", "_reservation", "done")

    def __init__(self, meter: Meter, plan: quota.Plan, reservation: Reservation) -> None:
        self._meter = meter
        self._plan = plan
        self._reservation = reservation
        self.done = False

    def priced(self, status: int, usage: Usage, cost: Cost, cut_short: bool) -> None:
        """``cut_short``: Warden ended an answer that had begun (its cost, unknown, may not be nothing)."""
        if self.done:
            return
        self.done = True
        actual = quota.actual(self._plan, status, usage, cost, cut_short)
        counters = self._meter.counters
        settle_now = getattr(counters, "settle_now", None)
        if settle_now is not None:  # a store that answers at once (the table): no task for it
            try:
                settle_now(self._reservation, actual)
            except Exception:
                log.warning("could not settle a request's reservation", exc_info=True)
            return
        self._meter.later(self._reservation, lambda: counters.settle(self._reservation, actual))

    def release(self) -> None:
        if not self.done:
            self.done = True
            counters = self._meter.counters
            self._meter.later(self._reservation, lambda: counters.release(self._reservation))


class Meter:
    def __init__(
        self,
        counters: Counters,
        catalogue: Catalogue,
        metrics: IngressMetrics,
        pending_max_bytes: int = PENDING_MAX_BYTES,
    ) -> None:
        self.counters = counters
        self._catalogue = catalogue
        self._metrics = metrics
        self._pending: set[asyncio.Task[None]] = set()
        self._pending_max_bytes = pending_max_bytes
        self._pending_bytes = 0

    async def admit(
        self,
        profile: Profile,
        who: quota.Who,
        at: datetime,
        body: Any,
        body_bytes: int,
        route: str,
        provider: str,
        model: str,
    ) -> Held | Refused | None:
        """None: admitted with nothing to settle (no limit applies, or the store is down and the profile fails
        open)."""
        rates = self._catalogue.rates(provider, model, at) if profile.budgets and model else None
        planned = quota.plan(profile, who, at, body, body_bytes, route, rates)
        if isinstance(planned, str):
            self._refused("budget", "profile")
            return Refused(402, f"this profile has a budget, and the request's cost cannot be counted: {planned}")
        if not planned.charges:
            return None
        try:
            outcome = await self.counters.reserve(planned.charges)
        except Exception as exc:  # unreachable, too slow, full: the profile decides
            return self._unavailable(profile, planned, exc)
        if isinstance(outcome, Reservation):
            return Held(self, planned, outcome)
        return await self._refusal(profile, planned, outcome, provider)

    async def _refusal(self, profile: Profile, planned: quota.Plan, refusal: Refusal, provider: str) -> Refused:
        kind, scope, ident, _ = planned.meaning[refusal.charge.counter]
        if kind == "budget":
            self._refused("budget", scope)
            return Refused(402, quota.budget_message(planned, refusal, profile.id))
        self._refused("rate_limit", scope)
        now = time.time()
        retry = quota.retry_after(refusal, now)
        status: dict[str, tuple[int, int]] = {}
        for name, (other_kind, other_scope, other_ident, _) in planned.meaning.items():
            if other_kind == "budget" or (other_scope, other_ident) != (scope, ident):
                continue
            charge = next(c for c in planned.charges if c.counter == name)
            used = refusal.used if name == refusal.charge.counter else await self._used(name)
            status[other_kind] = (charge.limit, max(charge.limit - used, 0))
        headers = quota.rate_headers(provider, status, retry, datetime.fromtimestamp(now, UTC))
        return Refused(429, quota.rate_message(planned, refusal, profile.id, retry), headers, retry)

    async def _used(self, counter: str) -> int:
        try:
            return await self.counters.used(counter)
        except Exception:
            return 0

    def _unavailable(self, profile: Profile, planned: quota.Plan, exc: Exception) -> Refused | None:
        kinds = {"budget" if meaning[0] == "budget" else "rate_limit" for meaning in planned.meaning.values()}
        closed = []
        for kind in sorted(kinds):
            mode = profile.budget_store_unavailable if kind == "budget" else profile.rate_limit_store_unavailable
            self._metrics.counter_store_unavailable.labels(kind, mode).inc()
            if mode == "closed":
                closed.append(kind)
        # The reason stays here: it names the store (a Redis URL without its password), nothing a client should see.
        log.warning(
            "the counter store is unavailable: %s",
            f"{type(exc).__name__}: {exc}",
            extra={"fields": {"profile_id": profile.id, "fails": "closed" if closed else "open"}},
        )
        if not closed:
            return None
        what = " and ".join("budgets" if kind == "budget" else "rate limits" for kind in closed)
        return Refused(503, UNAVAILABLE_MESSAGE.format(what=what), [(b"retry-after", b"1")], 1)

    def _refused(self, kind: str, scope: str) -> None:
        self._metrics.limit_refusals.labels(kind, scope).inc()

    def later(self, reservation: Reservation, step: Callable[[], Awaitable[None]]) -> None:
        """Settle or release in the background: the answer has gone already, nobody waits for it. Beyond
        ``pending_max_bytes`` waiting, the step is dropped (and counted) rather than memory growing while the store
        is slow."""
        size = pending_bytes(reservation)
        if self._pending_bytes + size > self._pending_max_bytes:
            self._metrics.counter_settlements_dropped.labels("full").inc()
            return
        self._pending_bytes += size
        task = asyncio.get_running_loop().create_task(self._quietly(step, size))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _quietly(self, step: Callable[[], Awaitable[None]], size: int) -> None:
        try:
            await step()
        except Exception as exc:
            self._metrics.counter_settlements_dropped.labels("failed").inc()
            log.warning("could not settle a request's reservation: %s", f"{type(exc).__name__}: {exc}")
        finally:
            self._pending_bytes -= size

    async def drain(self) -> None:
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def close(self) -> None:
        """Every settlement waiting is done, then the store's connections are closed."""
        await self.drain()
        await self.counters.close()
