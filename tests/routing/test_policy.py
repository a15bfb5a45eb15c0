"""The pure policy of routing: which failures are tried again, how long to wait, the breaker's states and the
weighted choice (a seeded generator: the same counts on every run)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from services.ingress.failover import retry
from services.ingress.failover.balance import Candidate, pick
from services.ingress.failover.breaker import Breaker, State
from services.ingress.failover.router import with_model

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("status", "expected", "again"),
    [
        (200, None, False),
        (302, None, False),
        (400, "status_4xx", False),
        (401, "status_4xx", False),
        (429, "status_429", True),
        (500, "status_5xx", True),
        (503, "status_5xx", True),
        (529, "status_5xx", True),
    ],
)
def test_which_statuses_are_tried_again(status, expected, again):
    assert retry.status_class(status) == expected
    assert retry.retryable(retry.status_class(status)) is again


def test_a_timeout_and_a_completed_answer_are_never_tried_again():
    assert not retry.retryable("timeout")
    assert not retry.retryable("status_4xx")
    assert not retry.retryable(None)
    for error in ("connect", "disconnected", "stream_broken", "status_429", "status_5xx"):
        assert retry.retryable(error)


def test_retry_after_in_seconds_and_as_an_http_date():
    assert retry.provider_wait({"retry-after": "7"}, NOW) == 7.0
    date = format_datetime(datetime.fromtimestamp(NOW + 42, UTC), usegmt=True)
    assert retry.provider_wait({"retry-after": date}, NOW) == pytest.approx(42.0)
    past = format_datetime(datetime.fromtimestamp(NOW - 42, UTC), usegmt=True)
    assert retry.provider_wait({"retry-after": past}, NOW) == 0.0
    assert retry.provider_wait({"retry-after-ms": "1500"}, NOW) == 1.5
    assert retry.provider_wait({"retry-after": "soon"}, NOW) is None
    assert retry.provider_wait({}, NOW) is None


def test_the_providers_rate_limit_resets_and_the_longest_wait_wins():
    assert retry.provider_wait({"x-ratelimit-reset-requests": "6m0s"}, NOW) == 360.0
    assert retry.provider_wait({"x-ratelimit-reset-tokens": "250ms"}, NOW) == 0.25
    assert retry.provider_wait({"x-ratelimit-reset-tokens": "2m3.5s"}, NOW) == 123.5
    reset = datetime.fromtimestamp(NOW + 20, UTC).isoformat().replace("+00:00", "Z")
    assert retry.provider_wait({"anthropic-ratelimit-tokens-reset": reset}, NOW) == pytest.approx(20.0)
    both = {"retry-after": "3", "x-ratelimit-reset-requests": "12s", "anthropic-ratelimit-requests-reset": "junk"}
    assert retry.provider_wait(both, NOW) == 12.0
    assert retry.provider_wait({"retry-after": "999999"}, NOW) == retry.MAX_WAIT_S


def test_backoff_is_full_jitter_under_an_exponential_cap():
    rng = random.Random(7)
    for attempt in range(8):
        ceiling = min(8.0, 0.25 * 2**attempt)
        waits = [retry.backoff(attempt, 0.25, 8.0, rng) for _ in range(200)]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling * 0.9 and min(waits) < ceiling * 0.1  # spread over the whole range


def test_a_breaker_opens_after_n_failures_half_opens_after_the_cooldown_and_closes_on_success():
    breaker = Breaker(threshold=3, cooldown_s=10.0)
    for at in (0.0, 1.0):
        breaker.failed(at)
        assert breaker.state(at) is State.CLOSED and breaker.available(at)
    breaker.failed(2.0)
    assert breaker.state(2.0) is State.OPEN and not breaker.acquire(5.0)
    assert breaker.ready_at(5.0) == 12.0
    assert breaker.state(12.0) is State.HALF_OPEN
    assert breaker.acquire(12.0), "one probe goes through"
    assert not breaker.acquire(12.5), "and only one"
    breaker.succeeded()
    assert breaker.state(13.0) is State.CLOSED and breaker.failures == 0


def test_a_failed_probe_opens_the_breaker_again():
    breaker = Breaker(threshold=1, cooldown_s=10.0)
    breaker.failed(0.0)
    assert breaker.acquire(10.0)
    breaker.failed(10.5)
    assert breaker.state(11.0) is State.OPEN and breaker.ready_at(11.0) == 20.5


def test_a_provider_wait_rests_the_deployment_without_opening_the_breaker():
    breaker = Breaker(threshold=5, cooldown_s=10.0)
    breaker.failed(0.0, wait_s=3.0)
    assert breaker.state(1.0) is State.CLOSED and not breaker.available(1.0)
    assert breaker.available(3.0)


def test_weights_are_respected():
    rng = random.Random(1234)
    candidates = [Candidate(0, 0, 1.0), Candidate(1, 0, 3.0)]
    counts = [0, 0]
    for _ in range(4000):
        counts[pick(candidates, "weighted", rng).index] += 1
    # 1:3 expected; with this seed the counts are fixed, and a quarter is within a few percent of them.
    assert 900 <= counts[0] <= 1100 and 2900 <= counts[1] <= 3100


def test_priority_first_then_least_outstanding():
    rng = random.Random(0)
    candidates = [Candidate(0, 1, 100.0), Candidate(1, 0, 1.0, outstanding=4), Candidate(2, 0, 1.0, outstanding=2)]
    assert pick(candidates, "weighted", rng).index in (1, 2)
    assert all(pick(candidates, "least_outstanding", rng).index == 2 for _ in range(50))
    assert pick([], "weighted", rng) is None


def test_the_model_sent_to_each_deployment():
    body = b'{"model":"smart","messages":[]}'
    assert with_model("/chat/completions", body, "smart", "smart") == ("/chat/completions", body)
    route, sent = with_model("/chat/completions", body, "smart", "gpt-4o")
    assert route == "/chat/completions" and sent == b'{"model":"gpt-4o","messages":[]}'
    route, sent = with_model("/v1beta/models/smart:streamGenerateContent", b"{}", "smart", "gemini-2.5-flash")
    assert route == "/v1beta/models/gemini-2.5-flash:streamGenerateContent" and sent == b"{}"
