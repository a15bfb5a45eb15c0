"""``warden serve`` as its users run it: every proxy worker counts in one table (a rate limit holds across two
workers, and so does a budget under 64 concurrent clients), spend survives a restart (the table is filled again from
the store), a budget added to a profile counts what was spent before it in its window (table and Redis), and a table
that cannot take a counter fails each profile the way it says (budgets closed, rate limits open), counted in the
metrics."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from plumbing.counters.base import Charge, Counters, CountersUnavailable
from plumbing.counters.redis import RedisCounters
from plumbing.counters.table import CounterTable
from services.ingress import quota
from tests.fakes.upstream import FakeUpstream
from tests.support.agents import new_agent
from tests.support.redis_server import RedisServer
from tests.support.serve_process import ServeProcess
from tests.support.spend import call, concurrent_calls, early_in_a_minute, hits, limited_profile, metric_value

SMALL_TABLE = 64 * 1024


def _serve(data_dir: Path, fake: FakeUpstream, workers: int, **env: str) -> ServeProcess:
    environment = {"WARDEN_OPENAI_BASE_URL": fake.url + "/v1", **env}
    return ServeProcess(data_dir, env=environment, args=["--workers", str(workers)]).start()


@pytest.fixture
def served(tmp_path: Path, fake_openai: FakeUpstream) -> Iterator[ServeProcess]:
    server = _serve(tmp_path / "data", fake_openai, 2)
    yield server
    server.interrupt()


def recorded(server: ServeProcess, agent: str, status: int, count: int) -> list[dict]:
    deadline = time.monotonic() + 30
    while True:
        items = httpx.get(f"{server.url}/api/interactions", params={"agent_id": agent, "limit": 500}).json()["items"]
        found = [item for item in items if item["status"] == status]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_two_workers_share_one_rate_limit_and_one_budget(served: ServeProcess, fake_openai: FakeUpstream):
    limit = 10
    profile = limited_profile(served.url, rate_limits=[{"scope": "agent", "requests_per_minute": limit}])
    agent = new_agent()
    early_in_a_minute()
    # Each call is a new connection, which the kernel hands to either worker: counted apart, about twice the limit
    # would pass.
    statuses = [call("openai_chat", served.url, profile, agent, max_tokens=8).status for _ in range(2 * limit)]
    assert statuses.count(200) == limit
    assert statuses.count(429) == limit
    assert hits(fake_openai, agent) == limit

    budget = 0.003
    profile = limited_profile(served.url, budgets=[{"usd": budget}])
    agent = new_agent()
    statuses = asyncio.run(concurrent_calls(served.url, profile, agent, 64))
    admitted = statuses.count(200)
    assert set(statuses) == {200, 402}
    assert hits(fake_openai, agent) == admitted
    spent = sum(item["cost"]["usd"] for item in recorded(served, agent, 200, admitted))
    assert spent <= budget


def test_spend_survives_a_restart(tmp_path: Path, fake_openai: FakeUpstream):
    data = tmp_path / "data"
    server = _serve(data, fake_openai, 2)
    try:
        profile = limited_profile(server.url, budgets=[{"scope": "agent", "usd": 0.003, "period": "month"}])
        agent, other = new_agent(), new_agent()
        admitted = 0
        while (outcome := call("openai_chat", server.url, profile, agent, max_tokens=16)).status == 200:
            admitted += 1
        assert outcome.status == 402 and admitted >= 1
        assert call("openai_chat", server.url, profile, other, max_tokens=16).status == 200
        spent = sum(item["cost"]["usd"] for item in recorded(server, agent, 200, admitted))
    finally:
        server.interrupt()
    server = _serve(data, fake_openai, 2)
    try:
        # The first request after the restart is refused: the agent's month was counted back from the store.
        refused = call("openai_chat", server.url, profile, agent, max_tokens=16)
        assert refused.status == 402
        counted = float(re.search(r"has \$([\d.,]+) spent or reserved", refused.message)[1].replace(",", ""))
        assert abs(counted - spent) <= 1e-6 * (admitted + 1)  # each request counted in whole micro-dollars
        assert hits(fake_openai, agent) == admitted
        # The other agent's own spend was counted back too, and it still fits.
        assert call("openai_chat", server.url, profile, other, max_tokens=16).status == 200
    finally:
        server.interrupt()


def _budget_added_later(
    server: ServeProcess,
    fake: FakeUpstream,
    counters: Counters,
    while_adding: Callable[[], contextlib.AbstractContextManager[object]] = contextlib.nullcontext,
) -> None:
    """An agent spends under a profile without a budget; then the profile gets a monthly agent budget below what the
    agent spent this month: its next request is refused, counted from the month's spend, not from zero.
    ``while_adding``: what holds while the budget is added (and its counters are first raised)."""
    profile = limited_profile(server.url)
    agent = new_agent()
    admitted = 4
    for _ in range(admitted):
        assert call("openai_chat", server.url, profile, agent, max_tokens=16).status == 200
    spent = sum(item["cost"]["usd"] for item in recorded(server, agent, 200, admitted))
    assert spent > 0
    budget = {"scope": "agent", "usd": round(spent / 2, 6), "period": "month"}
    current = httpx.get(f"{server.url}/api/profiles/{profile}", timeout=10).json()
    body = {"name": current["name"], "budgets": [budget]}
    with while_adding():
        updated = httpx.put(f"{server.url}/api/profiles/{profile}", json=body, timeout=10)
        assert updated.status_code == 200, updated.text

    window = quota.budget_window("month", datetime.now(UTC))
    counter = quota.budget_counter_for(profile, "agent", agent, "month", window)

    async def learnt() -> bool:  # in one event loop: a client's connections belong to the loop that opened them
        deadline = time.monotonic() + 30
        while await counters.used(counter) < quota.micro_usd(spent) * 0.999:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    assert asyncio.run(learnt()), "the new budget's counter never learnt what the agent had spent"
    refused = call("openai_chat", server.url, profile, agent, max_tokens=16)
    assert refused.status == 402
    counted = float(re.search(r"has \$([\d.,]+) spent or reserved", refused.message)[1].replace(",", ""))
    assert abs(counted - spent) <= 1e-6 * (admitted + 1)  # each request counted in whole micro-dollars
    assert hits(fake, agent) == admitted


def test_a_budget_added_to_a_profile_counts_what_was_spent_before_it(served: ServeProcess, fake_openai: FakeUpstream):
    table = CounterTable(served.data_dir / "counters.bin")
    try:
        _budget_added_later(served, fake_openai, table)
    finally:
        asyncio.run(table.close())


def test_with_redis_a_budget_added_to_a_profile_counts_what_was_spent_before_it(
    tmp_path: Path, fake_openai: FakeUpstream, redis_server
):
    prefix = uuid.uuid4().hex[:8]
    env = {"WARDEN_REDIS_URL": redis_server.url, "WARDEN_REDIS_KEY_PREFIX": prefix, "WARDEN_REDIS_TIMEOUT_MS": "5000"}
    server = _serve(tmp_path / "data", fake_openai, 2, **env)
    try:
        _budget_added_later(server, fake_openai, RedisCounters(redis_server.url, key_prefix=prefix, timeout_s=5))
    finally:
        server.interrupt()


@contextlib.contextmanager
def _paused(redis: RedisServer, server: ServeProcess) -> Iterator[None]:
    """Redis stops answering (its connections stay open) until the raise of the new budget's counters has failed."""
    failed = "budget counters could not be brought up to the store"
    before = server.output().count(failed)
    os.kill(redis.pid, signal.SIGSTOP)
    try:
        yield
        deadline = time.monotonic() + 30
        while server.output().count(failed) == before:
            assert time.monotonic() < deadline, "the raise never met the paused Redis"
            time.sleep(0.1)
    finally:
        os.kill(redis.pid, signal.SIGCONT)


def test_with_redis_away_when_a_budget_is_added_its_counters_learn_the_spend_once_it_is_back(
    tmp_path: Path, fake_openai: FakeUpstream
):
    with RedisServer() as redis:
        prefix = uuid.uuid4().hex[:8]
        env = {"WARDEN_REDIS_URL": redis.url, "WARDEN_REDIS_KEY_PREFIX": prefix, "WARDEN_REDIS_TIMEOUT_MS": "500"}
        server = _serve(tmp_path / "data", fake_openai, 2, **env)
        try:
            counters = RedisCounters(redis.url, key_prefix=prefix, timeout_s=5)
            _budget_added_later(server, fake_openai, counters, lambda: _paused(redis, server))
            assert "budget counters brought up to the store" in server.output()
        finally:
            server.interrupt()


def fill(path: Path, max_bytes: int) -> None:
    """Every slot of the table taken by counters that never end: no new counter finds room."""
    table = CounterTable(path, max_bytes)
    taken = i = 0
    while taken < table.slots and i < 50 * table.slots:
        try:
            table.reserve_now([Charge(f"filler-{i}", 1, 10, 0)], time.time())
            taken += 1
        except CountersUnavailable:
            pass
        i += 1
    assert taken == table.slots
    asyncio.run(table.close())


def test_a_full_counter_table_fails_budgets_closed_and_rate_limits_open(tmp_path: Path, fake_openai: FakeUpstream):
    data = tmp_path / "data"
    server = _serve(data, fake_openai, 1, WARDEN_COUNTERS_MAX_BYTES=str(SMALL_TABLE))
    try:
        budgeted = limited_profile(server.url, budgets=[{"usd": 10}])
        limited = limited_profile(server.url, rate_limits=[{"requests_per_minute": 1000}])
        open_budget = limited_profile(server.url, budgets=[{"usd": 10}], budget_store_unavailable="open")
        fill(data / "counters.bin", SMALL_TABLE)
        agent = new_agent()
        refused = call("openai_chat", server.url, budgeted, agent, max_tokens=8)
        assert refused.status == 503
        assert "budgets are unavailable" in refused.message and "fails closed" in refused.message
        assert "slots" not in refused.message, "the store's own reason stays in the log"
        assert hits(fake_openai, agent) == 0
        assert call("openai_chat", server.url, limited, agent, max_tokens=8).status == 200
        assert call("openai_chat", server.url, open_budget, agent, max_tokens=8).status == 200
        assert hits(fake_openai, agent) == 2
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
        assert metric_value(metrics, 'warden_counter_store_unavailable_total{kind="budget",mode="closed"}') == 1
        assert metric_value(metrics, 'warden_counter_store_unavailable_total{kind="budget",mode="open"}') == 1
        assert metric_value(metrics, 'warden_counter_store_unavailable_total{kind="rate_limit",mode="open"}') == 1
    finally:
        server.interrupt()


def test_with_redis_the_workers_count_in_redis_and_spend_survives_a_restart(
    tmp_path: Path, fake_openai: FakeUpstream, redis_server
):
    data = tmp_path / "data"
    env = {
        "WARDEN_REDIS_URL": redis_server.url,
        "WARDEN_REDIS_KEY_PREFIX": uuid.uuid4().hex[:8],
        "WARDEN_REDIS_TIMEOUT_MS": "5000",  # a loaded test machine: the test is about where spend is counted
    }
    server = _serve(data, fake_openai, 2, **env)
    try:
        profile = limited_profile(server.url, budgets=[{"scope": "agent", "usd": 0.003, "period": "month"}])
        agent = new_agent()
        admitted = 0
        while (outcome := call("openai_chat", server.url, profile, agent, max_tokens=16)).status == 200:
            admitted += 1
        assert outcome.status == 402 and admitted >= 2
        assert not (data / "counters.bin").exists(), "counted in Redis, not in the table"
    finally:
        server.interrupt()
    server = _serve(data, fake_openai, 2, **env)
    try:
        # Redis kept the month's spend: a fresh count would admit as many again.
        again = 0
        while (outcome := call("openai_chat", server.url, profile, agent, max_tokens=16)).status == 200:
            again += 1
        assert outcome.status == 402 and again < admitted
        assert hits(fake_openai, agent) == admitted + again
    finally:
        server.interrupt()
