"""Guardrails judge only the answer the client receives, and it is counted once: a failed attempt's answer is never
judged, and the tool call the answering deployment made is blocked (and counted) once, streamed and not."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import API_KEY
from tests.fakes.wire import Fault
from tests.routing.conftest import configure, metric
from tests.support.agents import attribution, new_agent
from tests.support.guardrails import make_profile

READ_FILE = {
    "type": "function",
    "function": {
        "name": "read_file",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    },
}
ASK = [{"role": "user", "content": '[[tool:read_file {"path": "/etc/passwd"}]]'}]


@pytest.fixture(scope="module")
def restrictive(warden) -> str:
    return make_profile(warden, "restrictive")


@pytest.mark.parametrize(
    ("stream", "fault"),
    [(False, Fault(directives="[[error:500]]")), (True, Fault(cut_before_first_byte=True))],
)
def test_the_answering_deployments_tool_call_is_blocked_once(warden, fakes, restrictive, stream, fault):
    first, second = fakes["openai"]
    alias = configure(warden, "openai", [first.base_url, second.base_url])
    first.fail_next(fault)
    agent = new_agent()
    client = openai.OpenAI(
        base_url=f"{warden.url}/v1/openai/{restrictive}",
        api_key=API_KEY,
        default_headers=attribution(agent),
        max_retries=0,
    )

    if stream:
        text = ""
        for chunk in client.chat.completions.create(
            model=alias.model,
            messages=ASK,
            tools=[READ_FILE],
            stream=True,
            stream_options={"include_usage": True},
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
            assert not (chunk.choices and chunk.choices[0].delta.tool_calls), "a blocked call reached the client"
    else:
        answer = client.chat.completions.create(model=alias.model, messages=ASK, tools=[READ_FILE])
        assert answer.choices[0].message.tool_calls is None
        text = answer.choices[0].message.content or ""
    assert "I tried to invoke the read_file tool" in text

    (item,) = warden.wait_for(lambda i: i["status"] == 200, timeout=30, agent_id=agent)
    detail = warden.detail(item["interaction_id"])
    assert [c["name"] for c in detail["blocked_tool_calls"]] == ["read_file"]
    assert [d["kind"] for d in detail["response_decisions"]].count("tool_call_blocked") == 1
    assert [a["answered"] for a in detail["upstream_attempts"]] == [False, True]
    labels = {"agent_id": agent, "profile_id": restrictive, "provider": "openai"}
    assert metric(warden, "llm_blocked_tools_total", **labels) == 1
    assert metric(warden, "llm_requests_total", model=alias.model, status="200", **labels) == 1
