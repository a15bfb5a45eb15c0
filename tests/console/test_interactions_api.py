"""The read API: filters, keyset pagination newest first, detail, errors."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import API_KEY
from tests.support.agents import attribution, new_agent


def make(warden, agent: str, user: str, count: int, model: str = "gpt-4o") -> None:
    sdk = openai.OpenAI(
        base_url=f"{warden.url}/v1/openai", api_key=API_KEY, default_headers=attribution(agent, user), max_retries=0
    )
    for n in range(count):
        sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": f"message {n}"}])


def all_done(warden, count: int, **params) -> list[dict]:
    items: list[dict] = []
    for _ in range(100):
        items = warden.interactions(limit=100, **params)["items"]
        if len(items) >= count and all(i["status"] for i in items):
            return items
        warden.wait_for(lambda i: True, **params)
    return items


def test_keyset_pagination_walks_every_interaction_newest_first_once(warden):
    agent, user = new_agent(), new_agent("user")
    make(warden, agent, user, 7)
    everything = all_done(warden, 7, agent_id=agent)
    assert len(everything) == 7

    seen, cursor = [], None
    while True:
        page = warden.interactions(agent_id=agent, limit=3, **({"cursor": cursor} if cursor else {}))
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [i["interaction_id"] for i in seen] == [i["interaction_id"] for i in everything]
    times = [i["started_at"] for i in seen]
    assert times == sorted(times, reverse=True)


def test_filters_combine(warden):
    agent, alice, bob = new_agent(), new_agent("alice"), new_agent("bob")
    make(warden, agent, alice, 2, model="gpt-4o")
    make(warden, agent, bob, 1, model="gpt-4o-mini")
    all_done(warden, 3, agent_id=agent)
    assert len(warden.interactions(agent_id=agent, user_id=alice)["items"]) == 2
    (only,) = warden.interactions(agent_id=agent, model="gpt-4o-mini")["items"]
    assert only["user_id"] == bob
    assert len(warden.interactions(agent_id=agent, status="2xx")["items"]) == 3
    assert warden.interactions(agent_id=agent, status="error")["items"] == []
    assert warden.interactions(agent_id=agent, blocked="true")["items"] == []
    newest = warden.interactions(agent_id=agent, limit=1)["items"][0]
    assert warden.interactions(agent_id=agent, since=newest["started_at"])["items"] == [newest]
    assert len(warden.interactions(agent_id=agent, until=newest["started_at"])["items"]) == 2


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "many"},
        {"status": "great"},
        {"since": "yesterday"},
        {"cursor": "garbage"},
        {"blocked": "maybe"},
        {"min_severity": "extreme"},
    ],
)
def test_bad_query_parameters_are_a_400(warden, params):
    response = httpx.get(f"{warden.url}/api/interactions", params=params, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]["message"]


def test_detail_of_an_unknown_or_malformed_id(warden):
    assert httpx.get(f"{warden.url}/api/interactions/6c1f4a4e-1111-4111-8111-111111111111").status_code == 404
    assert httpx.get(f"{warden.url}/api/interactions/not-an-id").status_code == 400
