"""Whether an answer is a stream comes from the request and the content type, never from how the body is framed: a
plain JSON answer sent with ``Transfer-Encoding: chunked`` and no ``Content-Length`` is judged like any other, in
every wire format."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import API_KEY
from tests.fakes.wire import FRAMING_HEADER, cut
from tests.support import canned
from tests.support.agents import new_agent
from tests.support.canned import Call
from tests.support.formats import FORMATS, ask
from tests.support.guardrails import make_profile


@pytest.fixture(scope="module")
def restrictive(warden) -> str:
    return make_profile(warden, "restrictive", name="framing")


@pytest.fixture(scope="module")
def permissive(warden) -> str:
    return make_profile(warden, "permissive", name="framing")


@pytest.mark.parametrize("framing", ["chunked", "chunked:7"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_chunked_json_answer_is_judged_and_its_blocked_call_withheld(warden, restrictive, fmt, framing):
    agent = new_agent()
    answer = ask(
        warden,
        fmt,
        restrictive,
        agent,
        '[[tool:read_file {"path": "/etc/passwd"}]]',
        stream=False,
        headers={FRAMING_HEADER: framing},
    )
    assert answer.calls == []
    assert "I tried to invoke the read_file tool" in answer.text and "system files are off limits" in answer.text
    (item,) = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent)
    assert item["blocked"] is True
    detail = warden.detail(item["interaction_id"])
    assert [call["name"] for call in detail["blocked_tool_calls"]] == ["read_file"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_chunked_json_answer_is_recorded_with_its_tool_calls(warden, permissive, fmt):
    agent = new_agent()
    answer = ask(
        warden,
        fmt,
        permissive,
        agent,
        '[[tool:read_file {"path": "/home/me/notes"}]]',
        stream=False,
        headers={FRAMING_HEADER: "chunked:5"},
    )
    assert answer.calls == [("read_file", {"path": "/home/me/notes"})]
    (item,) = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent)
    detail = warden.detail(item["interaction_id"])
    assert [call["name"] for call in detail["tool_calls"]] == ["read_file"]
    assert any(d["kind"] == "tool_call_allowed" for d in detail["response_decisions"])


def test_a_json_answer_to_a_stream_request_is_judged_whole(warden, restrictive, fake_openai):
    """An upstream that answers a streaming request with one JSON document (chunked): still one document, judged."""
    agent = new_agent()
    body = canned.chat_whole([[Call("read_file", '{"path": "/etc/shadow"}')]])
    fake_openai.answer_next(cut(body, 9), chunked=True)
    response = httpx.post(
        f"{warden.url}/v1/openai/{restrictive}/chat/completions",
        headers={"Authorization": f"Bearer {API_KEY}", "X-Archestra-Agent-Id": agent},
        json={
            "model": "gpt-4o",
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}],
        },
    )
    message = response.json()["choices"][0]["message"]
    assert "tool_calls" not in message
    assert "I tried to invoke the read_file tool" in message["content"] and "/etc/shadow" in message["content"]
    (item,) = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent)
    assert item["blocked"] is True
