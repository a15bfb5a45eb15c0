"""Prometheus metrics carry the agent_id label; every label a client can influence is cut and capped; the metrics
can be put behind the admin token."""

from __future__ import annotations

import httpx
import openai
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from services.ingress.metrics import IngressMetrics
from tests.conftest import API_KEY
from tests.support.agents import attribution, new_agent
from tests.support.limits import limited_warden


def test_metrics_carry_provider_model_profile_agent_and_status(warden):
    agent = new_agent()
    sdk = openai.OpenAI(
        base_url=f"{warden.url}/v1/openai", api_key=API_KEY, default_headers=attribution(agent), max_retries=0
    )
    answer = sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "count my tokens"}])
    text = warden.metrics()
    labels = f'agent_id="{agent}",model="gpt-4o",profile_id="default",provider="openai"'
    assert f'llm_requests_total{{{labels},status="200"}} 1.0' in text
    assert f'llm_request_duration_seconds_count{{{labels},status="200"}} 1.0' in text
    assert f"llm_time_to_first_token_seconds_count{{{labels}}} 1.0" in text
    assert f'llm_tokens_total{{{labels},type="input"}} {float(answer.usage.prompt_tokens)}' in text
    assert f'llm_tokens_total{{{labels},type="output"}} {float(answer.usage.completion_tokens)}' in text


def test_distinct_agent_ids_are_capped():
    registry = CollectorRegistry()
    metrics = IngressMetrics(registry, agent_label_cap=3)
    for n in range(10):
        metrics.observe(
            provider="openai",
            model="m",
            profile_id="default",
            agent_id=f"agent-{n}",
            status=200,
            duration_s=0.01,
            ttft_s=0.005,
            input_tokens=1,
            output_tokens=1,
        )
    text = generate_latest(registry).decode()
    seen = {line.split('agent_id="')[1].split('"')[0] for line in text.splitlines() if line.startswith("llm_requests")}
    assert seen == {"agent-0", "agent-1", "agent-2", "__other__"}
    assert 'agent_id="__other__",model="m",profile_id="default",provider="openai",status="200"} 7.0' in text


def test_a_megabyte_model_name_cannot_swell_the_metrics(warden):
    """Five requests with a ~900 KB model name (the shared Warden takes bodies up to 1 MiB): the label is cut, so a
    scrape stays small and the series stay few."""
    agent = new_agent()
    sdk = openai.OpenAI(
        base_url=f"{warden.url}/v1/openai", api_key=API_KEY, default_headers=attribution(agent), max_retries=0
    )
    # The shared Warden's scrape already holds what earlier tests made: what matters is what these five requests add.
    before = len(warden.metrics())
    for n in range(5):
        model = f"{n}" + "m" * 900_000
        sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    text = warden.metrics()
    assert len(text) - before < 200_000  # before the cut: over 5 MB for these five requests alone
    mine = [line for line in text.splitlines() if agent in line and line.startswith("llm_requests_total")]
    models = {line.split('model="')[1].split('"')[0] for line in mine}
    assert models == {f"{n}" + "m" * 127 for n in range(5)}


def test_every_client_driven_label_is_cut_and_capped():
    registry = CollectorRegistry()
    metrics = IngressMetrics(registry, agent_label_cap=3, label_cap=2, label_max_chars=8)
    for n in range(6):
        metrics.observe(
            provider="openai",
            model=f"model-{n}-" + "x" * 1000,
            profile_id=f"profile-{n}",
            agent_id=f"agent-{n}",
            status=200,
            duration_s=0.01,
            ttft_s=None,
            input_tokens=None,
            output_tokens=None,
        )
    text = generate_latest(registry).decode()
    series = [line for line in text.splitlines() if line.startswith("llm_requests_total{")]

    def values(label: str) -> set[str]:
        return {line.split(f'{label}="')[1].split('"')[0] for line in series}

    assert values("model") == {"model-0-", "model-1-", "__other__"}
    assert values("profile_id") == {"profile-"}  # cut to 8 characters, the six ids are one value
    assert values("agent_id") == {"agent-0", "agent-1", "agent-2", "__other__"}
    assert len(series) <= 2 * 2 * 4


def test_settings_refuse_a_metrics_token_requirement_without_a_token():
    from plumbing.settings import CommonSettings

    with pytest.raises(ValueError, match="WARDEN_METRICS_REQUIRE_TOKEN"):
        CommonSettings(metrics_require_token=True)
    assert CommonSettings(metrics_require_token=True, admin_token="t0ken").metrics_require_token


def test_metrics_behind_the_admin_token(tmp_path, fake_openai, fake_anthropic, fake_gemini):
    process = limited_warden(
        tmp_path / "data",
        (fake_openai, fake_anthropic, fake_gemini),
        WARDEN_ADMIN_TOKEN="metrics-t0ken",
        WARDEN_METRICS_REQUIRE_TOKEN="true",
    )
    try:
        assert httpx.get(f"{process.url}/metrics", timeout=10).status_code == 401
        wrong = httpx.get(f"{process.url}/metrics", headers={"Authorization": "Bearer nope"}, timeout=10)
        assert wrong.status_code == 401
        assert "llm_requests_total" in process.metrics()  # with the token
    finally:
        process.kill()
