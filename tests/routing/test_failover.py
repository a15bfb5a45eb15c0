"""Retries and fallbacks over a model alias's deployments, with every official SDK, streamed and not: a deployment
that fails (429 with Retry-After, 500, connection refused, a stream broken before its first byte) is skipped and
the client gets the next one's answer; a stream broken after its first byte is not repeated (the client sees the
error the provider's way); every attempt is on the stored record, and the answer is counted once."""

from __future__ import annotations

import httpx
import pytest

from tests.fakes.wire import Fault
from tests.routing.clients import FORMATS, SDK_ERRORS, ask
from tests.routing.conftest import closed_port_url, configure, metric
from tests.support.agents import new_agent

PROMPT = "Say hello to the routed deployment"
ECHO = "echo: " + PROMPT


def record_of(warden, agent: str) -> dict:
    (item,) = warden.wait_for(lambda i: i["status"] is not None, agent_id=agent)
    return warden.detail(item["interaction_id"])


def base_url(fake) -> str:
    return fake.base_url


@pytest.mark.parametrize(("provider", "stream"), FORMATS)
def test_a_500_falls_back_to_the_next_deployment(warden, fakes, provider, stream):
    first, second = fakes[provider]
    alias = configure(warden, provider, [base_url(first), base_url(second)])
    first.fail_next(Fault(directives="[[error:500]]"))
    agent = new_agent()

    text, output_tokens = ask(warden, provider, alias.model, PROMPT, agent, stream)

    assert text == ECHO
    assert (len(first.received), len(second.received)) == (1, 1)
    record = record_of(warden, agent)
    assert record["status"] == 200 and record["error"] is None
    attempts = record["upstream_attempts"]
    assert [(a["deployment"], a["status"], a["error_class"], a["answered"]) for a in attempts] == [
        (alias.deployments[0], 500, "status_5xx", False),
        (alias.deployments[1], 200, None, True),
    ]
    assert all(a["latency_ms"] >= 0 and a["model"] == alias.model for a in attempts)
    # Counted once: the answer the client got, not the failed attempt's.
    assert record["usage"]["output_tokens"] == output_tokens
    assert record["response_body"].count("echo:") <= max(1, record["response_body"].count("echo"))
    assert metric(warden, "llm_upstream_attempts_total", deployment=alias.deployments[0], outcome="status_5xx") == 1
    assert metric(warden, "llm_upstream_attempts_total", deployment=alias.deployments[1], outcome="success") == 1


@pytest.mark.parametrize(("provider", "stream"), FORMATS)
def test_a_refused_connection_falls_back(warden, fakes, provider, stream):
    _, second = fakes[provider]
    alias = configure(warden, provider, [closed_port_url() + ("/v1" if provider == "openai" else ""), second.base_url])
    agent = new_agent()

    text, _ = ask(warden, provider, alias.model, PROMPT, agent, stream)

    assert text == ECHO and len(second.received) == 1
    attempts = record_of(warden, agent)["upstream_attempts"]
    assert [(a["error_class"], a["status"], a["answered"]) for a in attempts] == [
        ("connect", None, False),
        (None, 200, True),
    ]
    assert "could not be reached" in attempts[0]["error"]


@pytest.mark.parametrize(("provider", "stream"), FORMATS)
def test_a_429_with_retry_after_rests_the_deployment(warden, fakes, provider, stream):
    first, second = fakes[provider]
    alias = configure(warden, provider, [first.base_url, second.base_url])
    first.fail_next(Fault(directives="[[error:429]]", headers=(("Retry-After", "3600"),)))

    for _ in range(3):
        text, _ = ask(warden, provider, alias.model, PROMPT, new_agent(), stream)
        assert text == ECHO
    # The first deployment asked for an hour: it got the first request only, the next ones went to the second.
    assert (len(first.received), len(second.received)) == (1, 3)
    assert metric(warden, "llm_upstream_attempts_total", deployment=alias.deployments[0], outcome="status_429") == 1


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_a_stream_broken_before_its_first_byte_falls_back(warden, fakes, provider):
    first, second = fakes[provider]
    alias = configure(warden, provider, [first.base_url, second.base_url])
    first.fail_next(Fault(cut_before_first_byte=True))
    agent = new_agent()

    text, _ = ask(warden, provider, alias.model, PROMPT, agent, stream=True)

    assert text == ECHO
    attempts = record_of(warden, agent)["upstream_attempts"]
    assert [(a["status"], a["error_class"], a["answered"]) for a in attempts] == [
        (200, "stream_broken", False),
        (200, None, True),
    ]


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_a_stream_broken_after_its_first_byte_is_not_repeated(warden, fakes, provider):
    first, second = fakes[provider]
    alias = configure(warden, provider, [first.base_url, second.base_url])
    first.fail_next(Fault(directives="[[stream_fail]]"))
    agent = new_agent()

    with pytest.raises(SDK_ERRORS[provider]):
        ask(warden, provider, alias.model, PROMPT + " one two three four", agent, stream=True)

    assert (len(first.received), len(second.received)) == (1, 0)
    record = record_of(warden, agent)
    assert record["status"] == 502 and "broke off" in record["error"]
    assert [(a["deployment"], a["answered"]) for a in record["upstream_attempts"]] == [(alias.deployments[0], True)]


@pytest.mark.parametrize(("provider", "stream"), [("openai", False), ("anthropic", True)])
def test_when_every_deployment_fails_the_client_gets_the_last_error_as_the_provider_sent_it(
    warden, fakes, provider, stream
):
    first, second = fakes[provider]
    alias = configure(warden, provider, [first.base_url, second.base_url], max_attempts=2)
    first.fail_next(Fault(directives="[[error:503]]"))
    second.fail_next(Fault(directives="[[error:429]]", headers=(("Retry-After", "7"),)))
    agent = new_agent()

    with pytest.raises(SDK_ERRORS[provider]) as caught:
        ask(warden, provider, alias.model, PROMPT, agent, stream)

    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "7"
    record = record_of(warden, agent)
    assert record["status"] == 429
    assert [a["status"] for a in record["upstream_attempts"]] == [503, 429]


def test_a_breaker_opens_after_n_failures_and_closes_after_the_cooldown(warden, fakes, router_clock):
    first, second = fakes["openai"]
    alias = configure(warden, "openai", [first.base_url, second.base_url], breaker_failures=2, breaker_cooldown_s=60)
    first.fail_always(Fault(directives="[[error:500]]"))
    state = {"deployment": alias.deployments[0]}

    for _ in range(2):
        assert ask(warden, "openai", alias.model, PROMPT, new_agent(), False)[0] == ECHO
    assert metric(warden, "llm_upstream_breaker_state", **state) == 2
    # Open: the next requests go to the second deployment without trying the first.
    for _ in range(3):
        assert ask(warden, "openai", alias.model, PROMPT, new_agent(), False)[0] == ECHO
    assert len(first.received) == 2

    # The cool-down passes (on the router's clock): one probe goes through; it fails, and the breaker opens again.
    router_clock.advance(61)
    assert ask(warden, "openai", alias.model, PROMPT, new_agent(), False)[0] == ECHO
    assert ask(warden, "openai", alias.model, PROMPT, new_agent(), False)[0] == ECHO
    assert len(first.received) == 3
    assert metric(warden, "llm_upstream_breaker_state", **state) == 2

    # Mended: after the next cool-down the probe succeeds and the breaker closes.
    first.fail_always(None)
    router_clock.advance(61)
    agent = new_agent()
    assert ask(warden, "openai", alias.model, PROMPT, agent, False)[0] == ECHO
    assert len(first.received) == 4
    assert record_of(warden, agent)["upstream_attempts"][0]["deployment"] == alias.deployments[0]
    assert metric(warden, "llm_upstream_breaker_state", **state) == 0


@pytest.fixture
def router_clock(warden):
    """The shared Warden's router clock, made to jump forward on demand (restored after the test)."""
    router = warden.embedded.ingress.routing.router
    real = router._clock

    class Shifted:
        offset = 0.0

        def __call__(self) -> float:
            return real() + self.offset

        def advance(self, seconds: float) -> None:
            self.offset += seconds

    shifted = Shifted()
    router._clock = shifted
    yield shifted
    router._clock = real


def test_the_model_sent_to_each_deployment_and_its_price(warden, fakes):
    first, second = fakes["openai"]
    alias = configure(warden, "openai", [first.base_url, second.base_url], send_model="gpt-4o-mini")
    first.fail_next(Fault(directives="[[error:502]]"))
    agent = new_agent()

    ask(warden, "openai", alias.model, PROMPT, agent, False)

    assert first.last.body["model"] == second.last.body["model"] == "gpt-4o-mini"
    record = record_of(warden, agent)
    assert record["model"] == alias.model  # what the client asked for
    assert [a["model"] for a in record["upstream_attempts"]] == ["gpt-4o-mini", "gpt-4o-mini"]
    assert record["cost"]["usd"] is not None, "priced as the model that answered"
    page = httpx.get(f"{warden.url}/logs/{record['interaction_id']}", timeout=10).text
    assert "Upstream attempts" in page
    assert alias.deployments[0] in page and alias.deployments[1] in page and "status_5xx" in page


def test_a_request_whose_model_has_no_alias_goes_to_the_provider_as_before(warden, fake_openai):
    agent = new_agent()
    before = len(fake_openai.received)
    text, _ = ask(warden, "openai", "gpt-4o", PROMPT, agent, False)
    assert text == ECHO and len(fake_openai.received) == before + 1
    assert record_of(warden, agent)["upstream_attempts"] == []
