"""The ingress never waits on recording, and nothing it accepted is lost."""

from __future__ import annotations

import asyncio

import openai

from tests.conftest import API_KEY
from tests.support.agents import attribution, new_agent


def test_requests_are_served_while_storage_is_stalled_and_all_are_stored_after(warden):
    release = asyncio.Event()
    original = warden.embedded.logger.subscription.handler

    async def stall():
        async def stalled_insert(batch):
            await release.wait()
            await original(batch)

        object.__setattr__(warden.embedded.logger.subscription, "handler", stalled_insert)

    # The in-process consumer reads its handler from the subscription on every batch.
    warden.call(lambda _: stall())
    agent = new_agent()
    sdk = openai.OpenAI(
        base_url=f"{warden.url}/v1/openai",
        api_key=API_KEY,
        default_headers=attribution(agent),
        max_retries=0,
        timeout=5,
    )
    try:
        for n in range(20):
            assert sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"n{n}"}])
        assert warden.interactions(agent_id=agent)["items"] == []
    finally:

        async def unstall():
            object.__setattr__(warden.embedded.logger.subscription, "handler", original)
            release.set()

        warden.call(lambda _: unstall())
    items = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent, limit=100)
    deadline = 50
    while len(items) < 20 and deadline:
        items = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent, limit=100)
        deadline -= 1
    assert len(items) == 20


def test_an_in_flight_request_is_visible_before_it_finishes(warden):
    agent = new_agent()
    sdk = openai.OpenAI(
        base_url=f"{warden.url}/v1/openai",
        api_key=API_KEY,
        default_headers=attribution(agent),
        max_retries=0,
        timeout=30,
    )

    import threading

    done = threading.Event()
    worker = threading.Thread(
        target=lambda: (
            sdk.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "[[slow:3]] take your time"}]
            ),
            done.set(),
        )
    )
    worker.start()
    (item,) = warden.wait_for(lambda i: i["in_flight"], timeout=2.5, agent_id=agent)
    assert item["status"] is None and not done.is_set()
    worker.join()
    (item,) = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent)
    assert not item["in_flight"]
