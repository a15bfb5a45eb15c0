"""Streams reach the client as they arrive; a client that leaves mid-stream is still recorded."""

from __future__ import annotations

import time

import httpx

from tests.conftest import API_KEY
from tests.support.agents import new_agent


def stream_request(warden, agent: str, prompt: str) -> httpx.Request:
    return httpx.Request(
        "POST",
        f"{warden.url}/v1/openai/chat/completions",
        json={"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": prompt}]},
        headers={"Authorization": f"Bearer {API_KEY}", "X-Archestra-Agent-Id": agent},
    )


def test_stream_chunks_arrive_before_the_stream_ends(warden):
    agent = new_agent()
    with httpx.Client(timeout=30) as http:
        response = http.send(stream_request(warden, agent, "[[chunks:6:0.3]] one two three four five six"), stream=True)
        arrivals = [time.monotonic() for chunk in response.iter_raw() if chunk]
        response.close()
    # Six deltas 0.3 s apart upstream: if Warden buffered the stream they would all arrive at once.
    assert len(arrivals) >= 4
    assert arrivals[-1] - arrivals[0] > 1.0
    (item,) = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent)
    assert item["ttft_ms"] < item["latency_ms"] - 1000


def test_a_client_that_leaves_mid_stream_is_recorded_as_aborted(warden):
    agent = new_agent()
    with httpx.Client(timeout=30) as http:
        response = http.send(stream_request(warden, agent, "[[chunks:30:0.2]] " + "word " * 30), stream=True)
        first = next(response.iter_raw())
        response.close()
    assert first.startswith(b"data:")
    (item,) = warden.wait_for(lambda i: i["aborted"] is True, timeout=15, agent_id=agent)
    detail = warden.detail(item["interaction_id"])
    assert detail["response_body"].startswith("data:")
    assert "[DONE]" not in detail["response_body"]


def test_a_stream_that_breaks_upstream_ends_with_an_error_event_and_is_recorded_failed(warden):
    agent = new_agent()
    with httpx.Client(timeout=30) as http:
        response = http.send(stream_request(warden, agent, "[[stream_fail]] hello there"), stream=True)
        body = b"".join(response.iter_raw())
    assert b'"error"' in body.splitlines()[-2] or b'"error"' in body[-300:]
    (item,) = warden.wait_for(lambda i: i["error"] is not None, agent_id=agent)
    assert item["status"] == 502
