"""The ingress never waits on recording, nothing it accepted is lost, and nothing is stored twice."""

from __future__ import annotations

import asyncio

import openai
from prometheus_client import CollectorRegistry

from plumbing.bus.base import Delivery
from plumbing.bus.dispatch import deliver
from plumbing.bus.inprocess import InProcessBus
from schemas import topics
from services.logger.service import LoggerService
from tests.conftest import API_KEY
from tests.distributed.events import interaction
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
                model="gpt-4o", messages=[{"role": "user", "content": "[[slow:15]] take your time"}]
            ),
            done.set(),
        )
    )
    worker.start()
    # The upstream holds its answer 15 s: time enough for the request half to be stored, even on a busy machine.
    (item,) = warden.wait_for(lambda i: i["in_flight"], timeout=12, agent_id=agent)
    assert item["status"] is None and not done.is_set()
    worker.join()
    (item,) = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent)
    assert not item["in_flight"]


def test_a_batch_delivered_again_adds_no_rows_and_one_delivered_in_other_batches_folds(warden):
    agent = new_agent()
    events = [e for n in range(50) for e in interaction(agent, n)]
    batch = [
        Delivery(
            topics.REQUESTS if e.type == "request" else topics.RESPONSES,
            e.interaction_id,
            None,
            e.model_dump_json().encode(),
        )
        for e in events
    ]

    async def count(store, final: str = "") -> int:
        sql = f"SELECT count() AS n FROM warden.interactions {final} WHERE agent_id = {{agent:String}} AND status = 200"
        (row,) = await store.select(sql, {"agent": agent})
        return row["n"]

    async def redeliver(embedded) -> tuple[int, int, int, int]:
        bus = InProcessBus()
        logger = LoggerService(bus, embedded.store, CollectorRegistry())
        # No background merge may fold rows while they are counted: only the insert's deduplication may drop them.
        await embedded.store.execute("SYSTEM STOP MERGES warden.interactions")
        try:
            await deliver(logger.subscription, batch, bus.publish)
            once = await count(embedded.store)
            # Redelivered after a crash before the commit: same rows, same token.
            await deliver(logger.subscription, batch, bus.publish)
            again = await count(embedded.store)
            # Redelivered in other batches (other tokens): new rows that fold.
            await deliver(logger.subscription, batch[:31], bus.publish)
            await deliver(logger.subscription, batch[31:], bus.publish)
            return once, again, await count(embedded.store), await count(embedded.store, "FINAL")
        finally:
            await embedded.store.execute("SYSTEM START MERGES warden.interactions")

    once, again, reshaped, logical = warden.call(redeliver)
    assert once == again == 50
    assert reshaped == 100 and logical == 50
