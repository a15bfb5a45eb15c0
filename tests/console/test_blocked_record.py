"""A refused answer as the record shows it: the finish reason the client received (not the upstream's, which ended
in tool calls), on the API and the detail page, and the guard's violation pointing at the decision in the record
(``response_decisions``), in every wire format, streamed and not."""

from __future__ import annotations

import html
import time
from collections.abc import Callable

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import types

from tests.conftest import API_KEY
from tests.support.agents import attribution, new_agent
from tests.support.guardrails import make_profile

PROMPT = '[[tool:read_file {"path": "/etc/passwd"}]]'
SCHEMA = {"type": "object", "properties": {"path": {"type": "string"}}}
Base = Callable[[str], str]
"""The base URL of a provider under the test's profile."""


def openai_chat(base: Base, agent: str, stream: bool) -> str:
    api = openai.OpenAI(base_url=base("openai"), api_key=API_KEY, default_headers=attribution(agent), max_retries=0)
    tools = [{"type": "function", "function": {"name": "read_file", "parameters": SCHEMA}}]
    messages = [{"role": "user", "content": PROMPT}]
    if not stream:
        return api.chat.completions.create(model="gpt-4o", messages=messages, tools=tools).choices[0].finish_reason
    chunks = api.chat.completions.create(model="gpt-4o", messages=messages, tools=tools, stream=True)
    return [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason][-1]


def openai_responses(base: Base, agent: str, stream: bool) -> str:
    api = openai.OpenAI(base_url=base("openai"), api_key=API_KEY, default_headers=attribution(agent), max_retries=0)
    tools = [{"type": "function", "name": "read_file", "parameters": SCHEMA}]
    if not stream:
        return api.responses.create(model="gpt-4.1", input=PROMPT, tools=tools).status
    with api.responses.stream(model="gpt-4.1", input=PROMPT, tools=tools) as events:
        for _ in events:
            pass
        return events.get_final_response().status


def anthropic_messages(base: Base, agent: str, stream: bool) -> str:
    api = anthropic.Anthropic(
        base_url=base("anthropic"), api_key=API_KEY, default_headers=attribution(agent), max_retries=0
    )
    tools = [{"name": "read_file", "input_schema": SCHEMA}]
    messages = [{"role": "user", "content": PROMPT}]
    model = "claude-sonnet-4-5"
    if not stream:
        return api.messages.create(model=model, max_tokens=256, messages=messages, tools=tools).stop_reason
    with api.messages.stream(model=model, max_tokens=256, messages=messages, tools=tools) as events:
        return events.get_final_message().stop_reason


def gemini(base: Base, agent: str, stream: bool) -> str:
    options = {"base_url": base("gemini"), "api_version": "v1beta", "headers": attribution(agent)}
    api = genai.Client(api_key=API_KEY, http_options=options)
    declaration = types.FunctionDeclaration(
        name="read_file",
        parameters=types.Schema(type=types.Type.OBJECT, properties={"path": types.Schema(type=types.Type.STRING)}),
    )
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[declaration])])
    if not stream:
        answer = api.models.generate_content(model="gemini-2.5-flash", contents=PROMPT, config=config)
        return answer.candidates[0].finish_reason.value
    chunks = list(api.models.generate_content_stream(model="gemini-2.5-flash", contents=PROMPT, config=config))
    return [c.candidates[0].finish_reason for c in chunks if c.candidates and c.candidates[0].finish_reason][-1].value


CLIENTS: dict[str, Callable[[Base, str, bool], str]] = {
    "openai-chat": openai_chat,
    "openai-responses": openai_responses,
    "anthropic": anthropic_messages,
    "gemini": gemini,
}
UPSTREAM_TOOL_FINISH = {"tool_calls", "tool_use"}
"""What the upstream's answers said before the refusal replaced them (Gemini and Responses say STOP / completed
either way, so for them the assertion that matters is the equality with what the client got)."""


@pytest.fixture(scope="module")
def restrictive(warden) -> str:
    return make_profile(warden, "restrictive", name="blocked-record")


def violations_of(warden, interaction_id: str) -> list[dict]:
    for _ in range(200):
        found = warden.detail(interaction_id)["violations"]
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("the guard recorded no violation")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("client", list(CLIENTS))
def test_a_refused_answer_is_recorded_as_the_client_received_it(warden, restrictive, client, stream):
    agent = new_agent()
    received = CLIENTS[client](lambda provider: f"{warden.url}/v1/{provider}/{restrictive}", agent, stream)
    assert received not in UPSTREAM_TOOL_FINISH

    (item,) = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent)
    assert item["blocked"] is True
    assert item["finish_reason"] == received
    detail = warden.detail(item["interaction_id"])
    assert detail["finish_reason"] == received
    page = httpx.get(f"{warden.url}/logs/{item['interaction_id']}")
    assert page.status_code == 200
    assert f"finish: {received}" in html.unescape(page.text)

    blocked = [i for i, d in enumerate(detail["response_decisions"]) if d["kind"] == "tool_call_blocked"]
    assert blocked
    violation = next(v for v in violations_of(warden, item["interaction_id"]) if v["detector"].endswith("call_blocked"))
    index = blocked[0]
    assert violation["location"].startswith(f"response_decisions[{index}]")
    assert detail["response_decisions"][index]["tool"] == "read_file"
