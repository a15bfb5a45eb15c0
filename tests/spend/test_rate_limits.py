"""Rate limits through the official SDKs: past a minute's requests or tokens a request is refused with 429 before it
leaves, with ``Retry-After`` and the provider's own rate-limit headers (OpenAI's ``x-ratelimit-*``, Anthropic's
``anthropic-ratelimit-*``, Gemini's RESOURCE_EXHAUSTED with its RetryInfo), so the SDKs back off on their own: the
OpenAI SDK retries a 429 after the time Warden says."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import openai
import pytest

from tests.conftest import API_KEY
from tests.support.agents import attribution, new_agent
from tests.support.spend import WIRES, call, early_in_a_minute, hits, limited_profile, metric_value

STREAMED = pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])


def until_refused(wire: str, warden, profile: str, agent: str, most: int, **kwargs: Any) -> tuple[int, Any]:
    for admitted in range(most):
        outcome = call(wire, warden.url, profile, agent, **kwargs)
        if outcome.status != 200:
            return admitted, outcome
    raise AssertionError(f"{most} calls were all admitted")


@pytest.mark.parametrize("wire", WIRES)
@STREAMED
def test_past_a_minutes_requests_a_429_says_when_to_retry(warden, fake_openai, wire, stream):
    profile = limited_profile(warden.url, rate_limits=[{"scope": "agent", "requests_per_minute": 2}])
    agent = new_agent()
    early_in_a_minute()
    admitted, refused = until_refused(wire, warden, profile, agent, 3, stream=stream)
    assert admitted == 2
    assert refused.status == 429
    assert f"2 requests per minute for agent {agent} in profile {profile}" in refused.message
    retry = int(refused.headers["retry-after"])
    assert 1 <= retry <= 60
    if wire == "anthropic":
        assert refused.body["error"]["type"] == "rate_limit_error"
        assert refused.headers["anthropic-ratelimit-requests-limit"] == "2"
        assert refused.headers["anthropic-ratelimit-requests-remaining"] == "0"
        reset = datetime.fromisoformat(refused.headers["anthropic-ratelimit-requests-reset"])
        assert reset.second == 0 and reset > datetime.now(UTC)
    elif wire == "gemini":
        error = refused.body["error"]
        assert error["code"] == 429 and error["status"] == "RESOURCE_EXHAUSTED"
        (info,) = error["details"]
        assert info["@type"] == "type.googleapis.com/google.rpc.RetryInfo"
        assert info["retryDelay"] == f"{retry}s"
    else:
        assert refused.body["type"] == "rate_limit_error"
        assert refused.headers["x-ratelimit-limit-requests"] == "2"
        assert refused.headers["x-ratelimit-remaining-requests"] == "0"
        assert refused.headers["x-ratelimit-reset-requests"] == f"{retry}s"
    (record,) = warden.wait_for(lambda i: i["status"] == 429, agent_id=agent)
    assert "rate limit reached" in warden.detail(record["interaction_id"])["error"]


def test_past_a_minutes_tokens_a_429_names_the_token_limit(warden, fake_openai):
    # Each request reserves its body's bytes and its 16 output tokens, and settles at the few tokens it used.
    profile = limited_profile(warden.url, rate_limits=[{"requests_per_minute": 1000, "tokens_per_minute": 300}])
    agent = new_agent()
    early_in_a_minute()
    admitted, refused = until_refused("openai_chat", warden, profile, agent, 40, max_tokens=16)
    assert admitted >= 2  # settled below their reservations, so more fit than 300 / worst case
    assert refused.status == 429
    assert f"300 tokens per minute for profile {profile}" in refused.message
    assert refused.headers["x-ratelimit-limit-tokens"] == "300"
    assert int(refused.headers["x-ratelimit-remaining-tokens"]) < 300
    # The sibling limit of the same scope is reported too.
    assert refused.headers["x-ratelimit-limit-requests"] == "1000"
    assert int(refused.headers["x-ratelimit-remaining-requests"]) == 1000 - admitted
    assert hits(fake_openai, agent) == admitted


class CountingOpenAI(openai.OpenAI):
    """The OpenAI SDK as it is, but for the waits it decides on, which are noted instead of slept."""

    waits: list[float]

    def _calculate_retry_timeout(self, remaining_retries: int, options: Any, response_headers: Any) -> float:
        self.waits.append(super()._calculate_retry_timeout(remaining_retries, options, response_headers))
        return 0.0


def test_the_openai_sdk_retries_a_429_after_the_time_warden_says(warden, fake_openai):
    profile = limited_profile(warden.url, rate_limits=[{"scope": "agent", "requests_per_minute": 1}])
    agent = new_agent()
    early_in_a_minute()
    sdk = CountingOpenAI(
        base_url=f"{warden.url}/v1/openai/{profile}", api_key=API_KEY, default_headers=attribution(agent), max_retries=2
    )
    sdk.waits = []
    messages = [{"role": "user", "content": f"hello from {agent}"}]
    sdk.chat.completions.create(model="gpt-4o", messages=messages, max_tokens=8)
    with pytest.raises(openai.RateLimitError) as refused:
        sdk.chat.completions.create(model="gpt-4o", messages=messages, max_tokens=8)
    retry = int(refused.value.response.headers["retry-after"])
    # Two retries, each after Warden's Retry-After (the minute's end, a second less or more as the clock turns).
    assert len(sdk.waits) == 2
    assert all(abs(wait - retry) <= 1 for wait in sdk.waits)
    refusals = warden.wait_for(lambda i: i["status"] == 429, agent_id=agent)
    deadline = time.monotonic() + 10
    while len(refusals) < 3 and time.monotonic() < deadline:
        refusals = [i for i in warden.interactions(agent_id=agent)["items"] if i["status"] == 429]
    assert len(refusals) == 3  # the first attempt and both retries reached Warden, none the upstream
    assert hits(fake_openai, agent) == 1


def test_rate_limit_refusals_are_counted(warden):
    profile = limited_profile(warden.url, rate_limits=[{"scope": "user", "requests_per_minute": 1}])
    series = 'warden_limit_refusals_total{kind="rate_limit",scope="user"}'
    before = metric_value(warden.metrics(), series)
    user = new_agent("user")
    early_in_a_minute()
    assert call("openai_chat", warden.url, profile, new_agent(), user=user).status == 200
    assert call("openai_chat", warden.url, profile, new_agent(), user=user).status == 429
    assert metric_value(warden.metrics(), series) == before + 1
