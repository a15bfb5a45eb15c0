"""The hot path's share: the client's traceparent continued or a trace started, sampled as OTEL_TRACES_SAMPLER says,
and the upstream given a traceparent naming the attempt's own span (never the client's)."""

from __future__ import annotations

import random

import pytest
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

from plumbing.tracing import Sampling
from services.ingress.tracecontext import TraceStarter, parse_traceparent

PARENT_BASED_OFF = Sampling(follow_parent=True, ratio=0.0)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


@pytest.mark.parametrize(
    "value",
    [
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has exactly four fields
        f"ff-{TRACE}-{SPAN}-01",  # the forbidden version
        f"00-{'0' * 32}-{SPAN}-01",  # the invalid trace id
        f"00-{TRACE}-{'0' * 16}-01",  # the invalid span id
        f"00-{TRACE.upper()}-{SPAN}-01",  # upper-case hex is not allowed
        f"00-{TRACE}-{SPAN}",
        "",
    ],
)
def test_a_traceparent_that_must_be_ignored_starts_a_new_trace(value):
    assert parse_traceparent(value) is None
    context = TraceStarter(PARENT_BASED_OFF).begin([(b"traceparent", value.encode())])
    assert context is not None and context.parent_span_id is None and context.trace_id != TRACE


def test_a_later_version_is_read_for_its_known_fields():
    parent = parse_traceparent(f"01-{TRACE}-{SPAN}-01-more")
    assert parent is not None and (parent.trace_id, parent.span_id, parent.sampled) == (TRACE, SPAN, True)


@pytest.mark.parametrize("flags", ["00", "01"])
def test_a_parent_based_sampler_follows_the_client(flags):
    headers = [(b"traceparent", f"00-{TRACE}-{SPAN}-{flags}".encode()), (b"tracestate", b"vendor=abc")]
    context = TraceStarter(PARENT_BASED_OFF).begin(headers)
    assert context is not None
    assert (context.trace_id, context.parent_span_id, context.tracestate) == (TRACE, SPAN, "vendor=abc")
    assert context.sampled is (flags == "01")
    assert len(context.span_id) == 16 and context.span_id != SPAN


def test_without_a_parent_the_root_sampler_decides():
    assert TraceStarter(PARENT_BASED_OFF).begin([]).sampled is False
    ratio = TraceStarter(Sampling(follow_parent=False, ratio=0.5))
    decisions = {ratio.begin([]).sampled for _ in range(200)}
    assert decisions == {True, False}


def test_the_upstream_gets_the_attempts_span_and_the_clients_tracestate():
    starter = TraceStarter(PARENT_BASED_OFF)
    context = starter.begin([(b"traceparent", f"00-{TRACE}-{SPAN}-01".encode()), (b"tracestate", b"k=v")])
    headers = [("traceparent", f"00-{TRACE}-{SPAN}-01"), ("Tracestate", "k=v"), ("x-api-key", "k")]
    attempt = starter.attempt(context, headers)
    assert attempt is not None
    assert headers == [("x-api-key", "k"), ("traceparent", f"00-{TRACE}-{attempt.span_id}-01"), ("tracestate", "k=v")]
    assert attempt.span_id not in (SPAN, context.span_id)


def test_tracing_off_leaves_everything_as_it_was():
    starter = TraceStarter(None)
    assert starter.begin([(b"traceparent", f"00-{TRACE}-{SPAN}-01".encode())]) is None
    headers = [("traceparent", f"00-{TRACE}-{SPAN}-01")]
    assert starter.attempt(None, headers) is None
    assert headers == [("traceparent", f"00-{TRACE}-{SPAN}-01")]


@pytest.mark.parametrize("ratio", [0.0, 0.01, 0.5, 0.999, 1.0])
def test_the_ratio_is_decided_as_the_sdk_decides_it(ratio):
    sdk, ours = TraceIdRatioBased(ratio), Sampling(follow_parent=False, ratio=ratio)
    for _ in range(2000):
        trace_id = random.getrandbits(128)
        assert ours.sampled(trace_id, None) is sdk.should_sample(None, trace_id, "x").decision.is_sampled()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, Sampling(True, 1.0)),
        ({"OTEL_TRACES_SAMPLER": "always_off"}, Sampling(False, 0.0)),
        ({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}, Sampling(True, 0.25)),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "x"}, Sampling(False, 1.0)),
    ],
)
def test_the_sampler_is_read_from_the_standard_variables(env, expected):
    assert Sampling.from_env(env) == expected


@pytest.mark.parametrize("ratio", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("follow_parent", [True, False])
def test_a_new_trace_is_sampled_as_the_sdk_samples_its_id(ratio, follow_parent):
    starter, sdk = TraceStarter(Sampling(follow_parent=follow_parent, ratio=ratio)), TraceIdRatioBased(ratio)
    for _ in range(500):
        context = starter.begin([(b"traceparent", b"not-a-traceparent")])
        assert context is not None and context.parent_span_id is None
        assert len(context.trace_id) == 32 and len(context.span_id) == 16 and context.trace_id[16:] != context.span_id
        expected = sdk.should_sample(None, int(context.trace_id, 16), "x").decision.is_sampled()
        assert context.sampled is expected


def test_a_tracestate_longer_than_the_standard_allows_is_not_passed_on():
    starter = TraceStarter(PARENT_BASED_OFF)
    parent = (b"traceparent", f"00-{TRACE}-{SPAN}-01".encode())
    assert starter.begin([parent, (b"tracestate", b"k=" + b"v" * 511)]).tracestate == ""
    assert starter.begin([parent, (b"tracestate", b"k=" + b"v" * 510)]).tracestate == "k=" + "v" * 510
    headers: list[tuple[str, str]] = [("content-type", "application/json")]
    attempt = starter.attempt(starter.begin([parent, (b"tracestate", b"k=" + b"v" * 511)]), headers)
    assert attempt is not None
    assert headers == [("content-type", "application/json"), ("traceparent", f"00-{TRACE}-{attempt.span_id}-01")]
