"""Budgets and rate limits over two ``warden ingress`` processes (on a real broker) sharing one real Redis: one
budget and one rate limit, whichever process a request reaches. Redis killed: budgets fail closed with a 503 in the
provider's shape that names nothing of the store, rate limits fail open, both counted; Redis back: enforcement
resumes."""

from __future__ import annotations

import asyncio
import threading
import uuid

import httpx
from prometheus_client import CollectorRegistry

from plumbing.bus.topics_admin import create_topics
from plumbing.counters.base import Charge, Reservation
from plumbing.counters.redis import RedisCounters
from services.ingress.metering import Meter, pending_bytes
from services.ingress.metrics import IngressMetrics
from services.pricing.catalogue import Catalogue
from tests.distributed.test_keys_on_kafka import start
from tests.distributed.test_replicated_config import until
from tests.support.agents import new_agent
from tests.support.spend import Outcome, call, early_in_a_minute, hits, metric_value

REQUESTS_PER_MINUTE = 4
MAX_TOKENS = 1000
BUDGET_USD = 0.015
"""One worst case of a gpt-4o request asking for ``MAX_TOKENS`` ($0.01 of output, well under $0.001 of input) fits;
two do not. What the fake upstream really charges for one (a few tokens) is far less."""
UNAVAILABLE = (
    "the counters of this profile's budgets are unavailable, and the profile fails closed: it refuses requests until "
    "they are back"
)


def alternating(urls: list[str], profile: str, agent: str, count: int) -> list[Outcome]:
    """``count`` chat calls of ``agent``, each to the next ingress in turn."""
    return [call("openai_chat", urls[i % len(urls)], profile, agent, max_tokens=8) for i in range(count)]


def known_everywhere(urls: list[str], profile: str) -> None:
    """Until every ingress has the profile (a probe agent of its own: the counters under test stay untouched)."""
    for url in urls:
        until(lambda url=url: call("openai_chat", url, profile, new_agent("probe"), max_tokens=8).status == 200, url)


def test_two_ingresses_sharing_redis_enforce_one_budget_and_one_rate_limit(
    kafka_bootstrap, fake_openai, redis_server, tmp_path
):
    asyncio.run(create_topics(kafka_bootstrap, partitions=3))
    env = {
        "WARDEN_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "WARDEN_OPENAI_BASE_URL": fake_openai.url + "/v1",
        "WARDEN_REDIS_URL": redis_server.url,
        "WARDEN_REDIS_KEY_PREFIX": uuid.uuid4().hex[:8],
        # A loaded test machine can take longer than the 50 ms default to answer: the test is about sharing.
        "WARDEN_REDIS_TIMEOUT_MS": "5000",
    }
    console, console_url = start(tmp_path, "console", "console", env)
    first, first_url = start(tmp_path, "ingress", "ingress-1", env)
    second, second_url = start(tmp_path, "ingress", "ingress-2", env)
    urls = [first_url, second_url]
    try:
        limited = _profile(console_url, rate_limits=[{"scope": "agent", "requests_per_minute": REQUESTS_PER_MINUTE}])
        budgeted = _profile(console_url, budgets=[{"scope": "agent", "period": "day", "usd": BUDGET_USD}])
        known_everywhere(urls, limited)
        known_everywhere(urls, budgeted)

        # One rate limit: requests alternate between the ingresses, and the limit holds over both together.
        early_in_a_minute()
        agent = new_agent()
        outcomes = alternating(urls, limited, agent, 2 * REQUESTS_PER_MINUTE)
        assert [o.status for o in outcomes] == [200] * REQUESTS_PER_MINUTE + [429] * REQUESTS_PER_MINUTE
        assert hits(fake_openai, agent) == REQUESTS_PER_MINUTE
        for refused in outcomes[REQUESTS_PER_MINUTE:]:
            assert refused.body["type"] == "rate_limit_error"
            assert int(refused.headers["retry-after"]) >= 1
            assert refused.headers["x-ratelimit-limit-requests"] == str(REQUESTS_PER_MINUTE)
            assert refused.headers["x-ratelimit-remaining-requests"] == "0"

        # One budget: a request held in flight on the first ingress holds its worst case, so the second refuses the
        # same agent's next one; once the first is answered and settled, its real (small) cost leaves room.
        agent = new_agent()
        held: list[Outcome] = []
        slow = threading.Thread(
            target=lambda: held.append(
                call("openai_chat", first_url, budgeted, agent, max_tokens=MAX_TOKENS, prompt=f"{agent} [[slow:20]]")
            )
        )
        slow.start()
        until(lambda: hits(fake_openai, agent) == 1, "the held request reached the upstream")
        refused = call("openai_chat", second_url, budgeted, agent, max_tokens=MAX_TOKENS, prompt=f"{agent} second")
        slow.join()
        assert held[0].status == 200
        assert refused.status == 402, refused
        assert refused.body["type"] == "budget_exceeded"
        assert f"the day budget of ${BUDGET_USD}" in refused.message and f"agent {agent}" in refused.message
        assert hits(fake_openai, agent) == 1, "the refused request never left"
        until(
            lambda: call("openai_chat", second_url, budgeted, agent, max_tokens=MAX_TOKENS).status == 200,
            "the held request's settlement reached Redis",
        )

        # Redis away: the budget fails closed without a word about the store, the rate limit fails open.
        redis_server.kill()
        refused = call("openai_chat", first_url, budgeted, new_agent(), max_tokens=8)
        assert refused.status == 503
        assert refused.body["message"] == UNAVAILABLE  # the provider's error envelope, as the SDK parsed it
        assert refused.headers["retry-after"] == "1"
        assert str(redis_server.port) not in str(refused.body) and redis_server.password not in str(refused.body)
        assert call("openai_chat", second_url, limited, agent_over := new_agent(), max_tokens=8).status == 200
        assert hits(fake_openai, agent_over) == 1
        first_metrics = httpx.get(f"{first_url}/metrics", timeout=10).text
        second_metrics = httpx.get(f"{second_url}/metrics", timeout=10).text
        assert metric_value(first_metrics, 'warden_counter_store_unavailable_total{kind="budget",mode="closed"}') >= 1
        assert (
            metric_value(second_metrics, 'warden_counter_store_unavailable_total{kind="rate_limit",mode="open"}') >= 1
        )

        # Redis back (empty: this one keeps nothing on disk): the limits hold again.
        redis_server.start()
        until(
            lambda: call("openai_chat", first_url, budgeted, new_agent("probe"), max_tokens=8).status == 200,
            "budgets admitted again",
        )
        early_in_a_minute()
        agent = new_agent()
        outcomes = alternating(urls, limited, agent, REQUESTS_PER_MINUTE + 2)
        assert [o.status for o in outcomes] == [200] * REQUESTS_PER_MINUTE + [429] * 2
    finally:
        for process in (first, second, console):
            process.interrupt()


def _profile(console_url: str, **spec) -> str:
    response = httpx.post(f"{console_url}/api/profiles", json={"name": f"shared-{uuid.uuid4().hex[:8]}", **spec})
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def test_settlements_waiting_for_redis_are_bounded_in_bytes_and_those_dropped_are_counted(redis_server):
    counters = RedisCounters(redis_server.url, timeout_s=5.0, key_prefix=uuid.uuid4().hex[:8])
    registry = CollectorRegistry()
    metrics = IngressMetrics(registry, 200)

    def dropped(reason: str) -> float | None:
        return registry.get_sample_value("warden_counter_settlements_dropped_total", {"reason": reason})

    try:
        reservations = []
        for i in range(4):
            reserved = await counters.reserve([Charge(f"budget:agent:a{i}", 100, 1000, 0)])
            assert isinstance(reserved, Reservation)
            reservations.append(reserved)
        meter = Meter(counters, Catalogue(), metrics, pending_max_bytes=2 * pending_bytes(reservations[0]))
        # Handed over in one go: none has run yet, so the first two fill the bound and the others are dropped.
        for i, reserved in enumerate(reservations):
            meter.later(reserved, lambda r=reserved, i=i: counters.settle(r, {f"budget:agent:a{i}": 30}))
        await meter.drain()
        assert [await counters.used(f"budget:agent:a{i}") for i in range(4)] == [30, 30, 100, 100]
        assert dropped("full") == 2
        # Room again once they are done; a settlement Redis does not answer is counted as failed.
        redis_server.kill()
        meter.later(reservations[2], lambda: counters.settle(reservations[2], {"budget:agent:a2": 30}))
        await meter.drain()
        assert dropped("failed") == 1
        assert dropped("full") == 2
    finally:
        redis_server.start()
        await counters.close()
