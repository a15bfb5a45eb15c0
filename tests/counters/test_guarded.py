"""A counter store that cannot answer: each kind of limit fails open or closed as configured, and it is counted."""

from __future__ import annotations

import uuid

from prometheus_client import CollectorRegistry

from plumbing.counters.base import Charge, Refusal, Reservation
from plumbing.counters.guarded import CounterStoreMetrics, FailMode, GuardedCounters, Unavailable, decide
from plumbing.counters.memory import MemoryCounters, counter_bytes
from plumbing.counters.redis import RedisCounters
from tests.support.redis_server import RedisServer

MODES = {"budget": FailMode.CLOSED, "rate": FailMode.OPEN}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def unavailable(registry: CollectorRegistry, kind: str, mode: str) -> float:
    value = registry.get_sample_value("warden_counter_store_unavailable_total", {"kind": kind, "mode": mode})
    return value or 0.0


def lost(registry: CollectorRegistry, kind: str) -> float:
    return registry.get_sample_value("warden_counter_store_lost_updates_total", {"kind": kind}) or 0.0


def test_the_decision_is_closed_unless_every_kind_fails_open() -> None:
    assert decide(["rate"], MODES) is FailMode.OPEN
    assert decide(["rate", "budget"], MODES) is FailMode.CLOSED
    assert decide(["tokens"], MODES) is FailMode.CLOSED, "a kind nobody configured fails closed"
    assert decide([], MODES) is FailMode.OPEN


async def test_redis_away_admits_rate_limits_refuses_budgets_and_counts_both() -> None:
    run = uuid.uuid4().hex[:8]
    rate = Charge(f"rate:agent:{run}:minute", 1, 100, 0)
    budget = Charge(f"budget:agent:{run}:month", 500, 10_000, 0)
    registry, clock = CollectorRegistry(), Clock()
    with RedisServer() as server:
        guarded = GuardedCounters(
            RedisCounters(server.url, timeout_s=0.5), MODES, CounterStoreMetrics(registry), pause_s=5, clock=clock
        )
        try:
            held = await guarded.reserve([rate, budget])
            assert isinstance(held, Reservation) and not held.empty
            server.kill()

            assert await guarded.reserve([rate]) == Reservation(()), "open: admitted, nothing to settle"
            refused = await guarded.reserve([rate, budget])
            assert isinstance(refused, Unavailable) and refused.charge == budget
            assert "Redis" in refused.reason and server.password not in refused.reason
            assert (unavailable(registry, "rate", "open"), unavailable(registry, "rate", "closed")) == (1, 1)
            assert unavailable(registry, "budget", "closed") == 1

            # A kind nobody configured fails closed, under a bounded label.
            other = Charge(f"tokens:{run}", 1, 10, 0)
            assert isinstance(await guarded.reserve([other]), Unavailable)
            assert unavailable(registry, "other", "closed") == 1

            # What was reserved before cannot be settled: counted, never raised to the request.
            await guarded.settle(held, {rate.counter: 1, budget.counter: 120})
            assert (lost(registry, "rate"), lost(registry, "budget")) == (1, 1)

            # Back, but within the pause the store is not asked again: the mode decides at once.
            server.start()
            assert isinstance(await guarded.reserve([budget]), Unavailable)
            clock.now += 5
            admitted = await guarded.reserve([budget])
            assert isinstance(admitted, Reservation) and not admitted.empty
            await guarded.release(admitted)
            assert await guarded.used(budget.counter) == 0
        finally:
            await guarded.close()


async def test_an_answer_from_the_store_passes_through_unchanged() -> None:
    registry = CollectorRegistry()
    guarded = GuardedCounters(MemoryCounters(), MODES, CounterStoreMetrics(registry))
    charge = Charge("budget:agent:a:total", 7, 10, 0)
    held = await guarded.reserve([charge])
    assert isinstance(held, Reservation)
    assert await guarded.reserve([charge]) == Refusal(charge, 7)
    await guarded.settle(held, {charge.counter: 3})
    assert await guarded.used(charge.counter) == 3
    assert unavailable(registry, "budget", "closed") == 0


async def test_full_in_process_counters_meet_the_same_decision() -> None:
    # Room for two counters: a third distinct one is "unavailable", so memory stays bounded whatever the names.
    names = [f"rate:agent:{i:04d}:minute" for i in range(3)]
    store = MemoryCounters(max_bytes=2 * counter_bytes(names[0]))
    registry = CollectorRegistry()
    guarded = GuardedCounters(store, {"rate": FailMode.OPEN, "budget": FailMode.CLOSED}, CounterStoreMetrics(registry))
    for counter in names[:2]:
        assert not (await guarded.reserve([Charge(counter, 1, 5, 0)])).empty  # type: ignore[union-attr]
    assert await guarded.reserve([Charge(names[2], 1, 5, 0)]) == Reservation(())
    assert unavailable(registry, "rate", "open") == 1
    assert await store.used(names[2]) == 0
    # A counter already held is still counted.
    assert isinstance(await store.reserve([Charge(names[0], 1, 5, 0)]), Reservation)
    assert await store.used(names[0]) == 2
