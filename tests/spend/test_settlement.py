"""What a request's reservation becomes when it ends: its priced cost when the answer reports usage (streamed or
not), nothing when the upstream failed before answering, and its whole worst case when an answer broke off with its
cost unknown (the provider may have charged for what it produced). And 64 concurrent clients against a small budget
never spend past it: each holds its worst case while it runs."""

from __future__ import annotations

import asyncio

import anthropic

from tests.conftest import API_KEY
from tests.support.agents import attribution, new_agent
from tests.support.spend import call, concurrent_calls, hits, limited_profile

ONE_AT_A_TIME = 0.0025
"""A budget that holds one worst case of a request asking for 100 output tokens of gpt-4o ($0.001 of output, at most
~$0.0008 of input), never two."""


def test_an_upstream_error_gives_its_reservation_back(warden, fake_openai):
    profile = limited_profile(warden.url, budgets=[{"usd": ONE_AT_A_TIME}])
    agent = new_agent()
    failed = call("openai_chat", warden.url, profile, agent, max_tokens=100, prompt=f"[[error:500]] {agent}")
    assert failed.status == 500
    # Had the failed request kept its worst case, this one's would not fit beside it.
    assert call("openai_chat", warden.url, profile, agent, max_tokens=100).status == 200
    assert call("openai_chat", warden.url, profile, agent, max_tokens=100, stream=True).status == 200


def test_a_stream_that_broke_off_keeps_its_worst_case(warden, fake_openai):
    profile = limited_profile(warden.url, budgets=[{"usd": ONE_AT_A_TIME}])
    agent = new_agent()
    broken = call(
        "openai_chat", warden.url, profile, agent, max_tokens=100, stream=True, prompt=f"[[stream_fail]] {agent}"
    )
    assert broken.status == 0 and "broke off" in broken.message
    refused = call("openai_chat", warden.url, profile, agent, max_tokens=100)
    assert refused.status == 402 and "spent or reserved" in refused.message
    assert hits(fake_openai, agent) == 1


def recorded_spend(warden, agent: str, admitted: int) -> float:
    items = warden.wait_for(
        lambda _: (
            len([i for i in warden.interactions(agent_id=agent, limit=500)["items"] if i["status"] == 200]) >= admitted
        ),
        agent_id=agent,
    )
    admitted_items = [i for i in warden.interactions(agent_id=agent, limit=500)["items"] if i["status"] == 200]
    assert items and len(admitted_items) == admitted
    return sum(item["cost"]["usd"] for item in admitted_items)


def test_64_concurrent_clients_do_not_spend_past_a_small_budget(warden, fake_openai):
    limit = 0.003
    profile = limited_profile(warden.url, budgets=[{"usd": limit, "period": "day"}])
    agent = new_agent()
    statuses = asyncio.run(concurrent_calls(warden.url, profile, agent, 64))
    admitted = statuses.count(200)
    assert set(statuses) == {200, 402}
    assert hits(fake_openai, agent) == admitted
    # Each admitted request reserved its worst case, and none cost more than it: the spend cannot pass the limit.
    assert recorded_spend(warden, agent, admitted) <= limit


def test_counting_tokens_takes_nothing_from_a_budget(warden, fake_anthropic):
    # A budget that holds one worst case of claude-sonnet-4-5 with 100 output tokens, never two.
    profile = limited_profile(warden.url, budgets=[{"usd": 0.003}])
    agent = new_agent()
    sdk = anthropic.Anthropic(
        base_url=f"{warden.url}/v1/anthropic/{profile}", api_key=API_KEY, default_headers=attribution(agent)
    )
    for _ in range(5):  # answered without usage: had each kept a reservation, the budget would be spent
        counted = sdk.messages.count_tokens(
            model="claude-sonnet-4-5", messages=[{"role": "user", "content": f"count me {agent}"}]
        )
        assert counted.input_tokens > 0
    assert call("anthropic", warden.url, profile, agent, max_tokens=100).status == 200
