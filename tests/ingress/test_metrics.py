"""Prometheus metrics carry the agent_id label, capped."""

from __future__ import annotations

import openai
from prometheus_client import CollectorRegistry, generate_latest

from services.ingress.metrics import IngressMetrics
from tests.conftest import API_KEY
from tests.support.agents import attribution, new_agent


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
