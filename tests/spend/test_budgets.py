"""Budgets through the official SDKs, in every wire format, streamed and not: requests are admitted while their
worst case fits, then refused before they leave with a 402 in the provider's own shape naming the budget; nothing
refused reaches the upstream; what was spent stays within the budget; the refusal is on the record and in the
metrics. Scopes: the profile, each agent, each user, each Warden key."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import openai
import pytest

from tests.support.agents import new_agent
from tests.support.keys import create_key
from tests.support.spend import MODELS, WIRES, call, hits, limited_profile, metric_value

STREAMED = pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
LIMITS = {"openai_chat": 0.003, "openai_responses": 0.003, "anthropic": 0.004, "gemini": 0.0005, "custom": 0.0001}
"""A day's budget per wire: a handful of requests' worst cases at the model's prices."""
MOST_CALLS = 80


@pytest.fixture
def fakes(fake_openai, fake_anthropic, fake_gemini, fake_compatible) -> dict[str, Any]:
    return {
        "openai_chat": fake_openai,
        "openai_responses": fake_openai,
        "anthropic": fake_anthropic,
        "gemini": fake_gemini,
        "custom": fake_compatible,
    }


def until_refused(wire: str, warden, profile: str, agent: str, **kwargs: Any) -> tuple[int, Any]:
    """Calls until one is refused: how many were admitted, and the refusal."""
    for admitted in range(MOST_CALLS):
        outcome = call(wire, warden.url, profile, agent, **kwargs)
        if outcome.status != 200:
            return admitted, outcome
    raise AssertionError(f"{MOST_CALLS} calls were all admitted")


def spent(warden, agent: str, expected: int) -> float:
    """The recorded cost of ``agent``'s admitted interactions, once all ``expected`` are on the record."""
    deadline = time.monotonic() + 10
    while True:
        admitted = [i for i in warden.interactions(agent_id=agent, limit=500)["items"] if i["status"] == 200]
        if len(admitted) >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(admitted) == expected
    assert all(item["cost"]["usd"] is not None for item in admitted)
    return sum(item["cost"]["usd"] for item in admitted)


def assert_shape(wire: str, status: int, outcome: Any) -> None:
    """The provider's own error envelope, as its SDK parsed it."""
    body = outcome.body
    if wire == "anthropic":
        assert body["type"] == "error"
        assert body["error"]["type"] == ("billing_error" if status == 402 else "rate_limit_error")
    elif wire == "gemini":
        # google-genai hands over the whole envelope as ``details``.
        assert body["error"]["code"] == status
        assert body["error"]["status"] == "RESOURCE_EXHAUSTED"
    else:
        # The OpenAI SDK keeps the envelope's inner object.
        assert body["type"] == ("budget_exceeded" if status == 402 else "rate_limit_error")
        assert body["message"] == outcome.message or outcome.message.endswith(body["message"])


@pytest.mark.parametrize("wire", WIRES)
@STREAMED
def test_a_spent_budget_refuses_with_402_in_the_providers_shape(warden, fakes, wire, stream):
    limit = LIMITS[wire]
    profile = limited_profile(warden.url, budgets=[{"scope": "profile", "period": "day", "usd": limit}])
    agent = new_agent()
    admitted, refused = until_refused(wire, warden, profile, agent, stream=stream, max_tokens=16)
    assert refused.status == 402
    assert admitted >= 1
    assert_shape(wire, 402, refused)
    assert f"the day budget of ${limit}" in refused.message
    assert f"profile {profile}" in refused.message
    assert hits(fakes[wire], agent) == admitted  # the refused one never left
    assert spent(warden, agent, admitted) <= limit
    (record,) = warden.wait_for(lambda i: i["status"] == 402, agent_id=agent)
    detail = warden.detail(record["interaction_id"])
    assert "budget exceeded" in detail["error"]
    assert detail["model"] == MODELS[wire]


def test_a_request_whose_worst_case_alone_passes_the_budget_is_refused_at_once(warden, fake_openai):
    profile = limited_profile(warden.url, budgets=[{"scope": "profile", "period": "month", "usd": 0.01}])
    agent = new_agent()
    refused = call("openai_chat", warden.url, profile, agent, max_tokens=100_000)
    assert refused.status == 402
    assert "100000 output tokens" in refused.message and "lower max_tokens" in refused.message
    assert hits(fake_openai, agent) == 0
    # The same agent asking for less is admitted: nothing was spent.
    assert call("openai_chat", warden.url, profile, agent, max_tokens=16).status == 200


def test_without_max_tokens_the_profiles_default_is_reserved(warden, fake_openai):
    # Its default output (1,000,000 tokens at $10/M) alone passes a $1 budget: refused; naming max_tokens fits.
    profile = limited_profile(
        warden.url, budgets=[{"usd": 1.0, "period": "total"}], default_max_output_tokens=1_000_000
    )
    agent = new_agent()
    sdk = openai.OpenAI(base_url=f"{warden.url}/v1/openai/{profile}", api_key="sk-x", max_retries=0)
    with pytest.raises(openai.APIStatusError) as refused:
        sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"hi {agent}"}])
    assert refused.value.status_code == 402
    assert "1000000 output tokens" in refused.value.message
    sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"hi {agent}"}], max_tokens=8)
    assert hits(fake_openai, agent) == 1


def test_the_openai_sdk_does_not_retry_a_402(warden, fake_openai):
    profile = limited_profile(warden.url, budgets=[{"usd": 0.0001}])
    agent = new_agent()
    refused = call("openai_chat", warden.url, profile, agent, max_tokens=1000, max_retries=3)
    assert refused.status == 402
    warden.wait_for(lambda i: i["status"] == 402, agent_id=agent)
    assert len(warden.interactions(agent_id=agent)["items"]) == 1  # one request reached Warden
    assert hits(fake_openai, agent) == 0


def test_a_model_without_a_price_cannot_be_budgeted(warden, fake_openai):
    profile = limited_profile(warden.url, budgets=[{"usd": 100}])
    sdk = openai.OpenAI(base_url=f"{warden.url}/v1/openai/{profile}", api_key="sk-x", max_retries=0)
    with pytest.raises(openai.APIStatusError) as refused:
        sdk.chat.completions.create(model="warden-unpriced-model", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.status_code == 402
    assert "cannot be counted" in refused.value.message and "warden-unpriced-model" in refused.value.message


# -- scopes ---------------------------------------------------------------------------------------------------------


def test_an_agents_budget_is_its_own(warden, fake_openai):
    profile = limited_profile(warden.url, budgets=[{"scope": "agent", "period": "week", "usd": 0.003}])
    first, second = new_agent(), new_agent()
    admitted, refused = until_refused("openai_chat", warden, profile, first, max_tokens=16)
    assert refused.status == 402 and f"agent {first} in profile {profile}" in refused.message
    assert "week budget" in refused.message and re.search(r"\(\d{4}-W\d{2} UTC\)", refused.message)
    # Another agent of the same profile still has its whole budget.
    assert call("openai_chat", warden.url, profile, second, max_tokens=16).status == 200
    assert spent(warden, first, admitted) <= 0.003


def test_a_users_budget_is_its_own_across_agents(warden, fake_openai):
    profile = limited_profile(warden.url, budgets=[{"scope": "user", "period": "month", "usd": 0.003}])
    user = new_agent("user")
    for _ in range(MOST_CALLS):  # a new agent each time: only the user's budget can refuse
        outcome = call("openai_chat", warden.url, profile, new_agent(), user=user, max_tokens=16)
        if outcome.status != 200:
            break
    assert outcome.status == 402 and f"user {user} in profile {profile}" in outcome.message
    assert call("openai_chat", warden.url, profile, new_agent(), user=new_agent("user"), max_tokens=16).status == 200


def test_a_warden_keys_budget_is_its_own(warden, fake_openai):
    profile = limited_profile(
        warden.url,
        auth="managed",
        credentials={"openai": "sk-upstream-key"},
        budgets=[{"scope": "key", "period": "day", "usd": 0.003}],
    )
    agent = new_agent()
    key = create_key(warden, profile, agent)
    other = create_key(warden, profile, agent)
    admitted, refused = until_refused("openai_chat", warden, "", "", api_key=key.secret, prompt=f"hi {agent}")
    assert refused.status == 402 and f"Warden key {key.id} of profile {profile}" in refused.message
    assert hits(fake_openai, agent) == admitted
    # The same agent with another key has that key's own budget.
    assert call("openai_chat", warden.url, "", "", api_key=other.secret, prompt=f"hi {agent}").status == 200


def test_budget_refusals_are_counted(warden):
    profile = limited_profile(warden.url, budgets=[{"scope": "agent", "usd": 0.0001}])
    before = metric_value(warden.metrics(), 'warden_limit_refusals_total{kind="budget",scope="agent"}')
    assert call("openai_chat", warden.url, profile, new_agent(), max_tokens=1000).status == 402
    assert metric_value(warden.metrics(), 'warden_limit_refusals_total{kind="budget",scope="agent"}') == before + 1


def test_budgets_are_validated_naming_the_field(warden):
    response = httpx.post(
        f"{warden.url}/api/profiles", json={"name": "bad", "budgets": [{"scope": "team", "usd": 1}]}, timeout=10
    )
    assert response.status_code == 422 and "scope" in response.text
    response = httpx.post(f"{warden.url}/api/profiles", json={"name": "bad", "rate_limits": [{}]}, timeout=10)
    assert response.status_code == 422 and "requests_per_minute" in response.text
