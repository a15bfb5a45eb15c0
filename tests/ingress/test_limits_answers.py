"""Answers of any size pass through in bounded memory, and a restrictive profile never releases what it could not hold
to judge.

Warden runs as its own process here (small limits: a 256 KiB record, a 1 MiB judgement), so the kernel's account of
its memory (peak resident set, reset before each attack) measures what an answer costs it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from tests.conftest import API_KEY
from tests.support.agents import attribution, new_agent
from tests.support.guardrails import make_profile
from tests.support.limits import LimitedWarden, limited_warden

RECORD_LIMIT = 256 * 1024
JUDGE_LIMIT = 1024 * 1024
MIB = 1024 * 1024
TRANSFER = 64 * MIB
"""Bytes pushed through Warden by each memory test; holding them would grow it by at least as much."""
GROWTH_BOUND = 40 * MIB
"""What Warden's resident set may grow by while relaying TRANSFER bytes: the bounded path needs a few hundred KiB,
the rest is the process's own background work (the embedded store, the guard), seen up to ~25 MiB; holding the
answer needs TRANSFER or more."""
FORMATS = ("openai-chat", "openai-responses", "anthropic", "gemini")
READ_FILE_SCHEMA = {"type": "object", "properties": {"path": {"type": "string"}}}


def start(tmp_path_factory, fakes) -> LimitedWarden:
    return limited_warden(
        tmp_path_factory.mktemp("limits-answers"),
        fakes,
        WARDEN_MAX_RECORDED_BODY_BYTES=str(RECORD_LIMIT),
        WARDEN_MAX_JUDGED_ANSWER_BYTES=str(JUDGE_LIMIT),
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory, fake_openai, fake_anthropic, fake_gemini) -> Iterator[LimitedWarden]:
    process = start(tmp_path_factory, (fake_openai, fake_anthropic, fake_gemini))
    yield process
    process.kill()


@pytest.fixture
def fresh(tmp_path_factory, fake_openai, fake_anthropic, fake_gemini) -> Iterator[LimitedWarden]:
    """A Warden of its own for one memory measurement: memory an earlier attack made the process take (and keep)
    would otherwise hide what the next one takes."""
    process = start(tmp_path_factory, (fake_openai, fake_anthropic, fake_gemini))
    yield process
    process.kill()


@pytest.fixture(scope="module")
def restrictive(served) -> str:
    return make_profile(served, "restrictive", name="limits")


@pytest.fixture(scope="module")
def permissive(served) -> str:
    return make_profile(served, "permissive", name="limits")


def request(served: LimitedWarden, fmt: str, profile: str, prompt: str, stream: bool, agent: str) -> httpx.Request:
    """One generation request declaring a ``read_file`` tool, in ``fmt``'s wire format."""
    headers = attribution(agent)
    segment = f"/{profile}" if profile else ""
    if fmt == "openai-chat":
        url = f"{served.url}/v1/openai{segment}/chat/completions"
        tool = {"type": "function", "function": {"name": "read_file", "parameters": READ_FILE_SCHEMA}}
        body: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}], "tools": [tool]}
        headers["Authorization"] = f"Bearer {API_KEY}"
    elif fmt == "openai-responses":
        url = f"{served.url}/v1/openai{segment}/responses"
        tool = {"type": "function", "name": "read_file", "parameters": READ_FILE_SCHEMA}
        body = {"model": "gpt-4o", "input": prompt, "tools": [tool]}
        headers["Authorization"] = f"Bearer {API_KEY}"
    elif fmt == "anthropic":
        url = f"{served.url}/v1/anthropic{segment}/v1/messages"
        tool = {"name": "read_file", "input_schema": READ_FILE_SCHEMA}
        body = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": prompt}]}
        body["tools"] = [tool]
        headers |= {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
    else:
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
        url = f"{served.url}/v1/gemini{segment}/v1beta/models/gemini-2.5-flash:{action}"
        declaration = {
            "name": "read_file",
            "parameters": {"type": "OBJECT", "properties": {"path": {"type": "STRING"}}},
        }
        body = {
            "contents": [{"role": "user", "parts": [{"text": prompt}]}],
            "tools": [{"functionDeclarations": [declaration]}],
        }
        headers["x-goog-api-key"] = API_KEY
    if stream and fmt != "gemini":
        body["stream"] = True
    return httpx.Request("POST", url, json=body, headers=headers)


def relay(served: LimitedWarden, req: httpx.Request, stop_after: int | None = None) -> tuple[int, int, bytes]:
    """Send ``req``; read the answer (or ``stop_after`` bytes of it, then hang up). Returns the status, the bytes
    read and the last 64 KiB of them."""
    read, tail = 0, b""
    with httpx.Client(timeout=120) as http:
        response = http.send(req, stream=True)
        for chunk in response.iter_raw():
            read += len(chunk)
            tail = (tail + chunk)[-65536:]
            if stop_after is not None and read >= stop_after:
                break
        response.close()
    return response.status_code, read, tail


def warm_up(served: LimitedWarden) -> None:
    """A few ordinary exchanges first, so the pools every request uses are allocated; then wait until they are stored,
    so the store's work on them is not counted as the measured exchange's."""
    agent = new_agent()
    for fmt in FORMATS:
        for stream in (False, True):
            status, _, _ = relay(served, request(served, fmt, "", "warm up", stream, agent))
            assert status == 200
    served.wait_for(lambda _: _all_stored(served, agent, 8), timeout=30, agent_id=agent)


def _all_stored(served: LimitedWarden, agent: str, count: int) -> bool:
    items = served.interactions(agent_id=agent)["items"]
    return len(items) == count and all(item["status"] is not None for item in items)


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_endless_stream_is_relayed_in_bounded_memory_and_recorded_up_to_the_limit(fresh, fmt):
    served = fresh
    warm_up(served)
    agent = new_agent()
    before = served.reset_peak()
    status, read, _ = relay(served, request(served, fmt, "", "[[endless]] go on", True, agent), stop_after=TRANSFER)
    growth = served.peak_bytes() - before
    assert status == 200 and read >= TRANSFER
    assert growth < GROWTH_BOUND, f"Warden grew by {growth} bytes relaying {read}"
    (item,) = served.wait_for(lambda i: i["aborted"] is True, timeout=30, agent_id=agent)
    body = served.detail(item["interaction_id"])["response_body"]
    assert len(body.encode()) < RECORD_LIMIT + 200
    assert "[truncated by warden:" in body


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_large_answer_passes_through_whole_in_bounded_memory(fresh, fmt):
    served = fresh
    warm_up(served)
    agent = new_agent()
    before = served.reset_peak()
    req = request(served, fmt, "", f"[[flood:{TRANSFER}]] big", False, agent)
    with httpx.Client(timeout=120) as http:
        response = http.send(req, stream=True)
        chunks = list(response.iter_raw())
    growth = served.peak_bytes() - before
    assert response.status_code == 200
    assert growth < GROWTH_BOUND, f"Warden grew by {growth} bytes relaying {TRANSFER}"
    answer = json.loads(b"".join(chunks))  # whole and intact
    assert "x" * 1000 in json.dumps(answer)
    assert int(response.headers["content-length"]) == sum(len(chunk) for chunk in chunks)
    (item,) = served.wait_for(lambda i: i["status"] == 200, timeout=30, agent_id=agent)
    detail = served.detail(item["interaction_id"])
    assert "[truncated by warden:" in detail["response_body"]
    assert len(detail["response_body"].encode()) < RECORD_LIMIT + 200


def ask_blocked_call_after(size: int) -> str:
    """An answer of ``size`` characters of text, then a call the policies block."""
    return f'[[flood:{size}]] [[tool:read_file {{"path": "/etc/passwd"}}]] read it'


def refused_by_sdk(served: LimitedWarden, fmt: str, profile: str, prompt: str, agent: str) -> Exception:
    """The error each official SDK raises for the answer to ``prompt`` (non-streamed)."""
    headers = attribution(agent)
    base = f"{served.url}/v1"
    try:
        if fmt in ("openai-chat", "openai-responses"):
            client = openai.OpenAI(base_url=f"{base}/openai/{profile}", api_key=API_KEY, default_headers=headers)
            client = client.with_options(max_retries=0)
            tool = {"type": "function", "function": {"name": "read_file", "parameters": READ_FILE_SCHEMA}}
            if fmt == "openai-chat":
                client.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": prompt}], tools=[tool]
                )
            else:
                tool = {"type": "function", "name": "read_file", "parameters": READ_FILE_SCHEMA}
                client.responses.create(model="gpt-4o", input=prompt, tools=[tool])
        elif fmt == "anthropic":
            claude = anthropic.Anthropic(
                base_url=f"{base}/anthropic/{profile}", api_key=API_KEY, default_headers=headers, max_retries=0
            )
            claude.messages.create(
                model="claude-sonnet-4-5",
                max_tokens=64,
                messages=[{"role": "user", "content": prompt}],
                tools=[{"name": "read_file", "input_schema": READ_FILE_SCHEMA}],
            )
        else:
            options = {"base_url": f"{base}/gemini/{profile}", "api_version": "v1beta", "headers": headers}
            gemini = genai.Client(api_key=API_KEY, http_options=options)
            read_file = types.FunctionDeclaration(
                name="read_file",
                parameters=types.Schema(type=types.Type.OBJECT, properties={"path": types.Schema(type="STRING")}),
            )
            config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[read_file])])
            gemini.models.generate_content(model="gemini-2.5-flash", contents=prompt, config=config)
    except (openai.APIStatusError, anthropic.APIStatusError, genai_errors.APIError) as exc:
        return exc
    raise AssertionError("the answer was released")


@pytest.mark.parametrize("fmt", FORMATS)
def test_restrictive_refuses_a_non_streamed_answer_too_large_to_judge(served, restrictive, fmt):
    agent = new_agent()
    error = refused_by_sdk(served, fmt, restrictive, ask_blocked_call_after(2 * JUDGE_LIMIT), agent)
    status = error.code if isinstance(error, genai_errors.APIError) else error.status_code
    assert status == 502
    assert "too large to judge" in str(error)
    (item,) = served.wait_for(lambda i: i["status"] == 502, timeout=30, agent_id=agent)
    detail = served.detail(item["interaction_id"])
    assert "too large to judge" in detail["error"]
    assert [d["kind"] for d in detail["response_decisions"]] == ["answer_unjudged"]
    assert "/etc/passwd" not in detail["response_body"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_restrictive_ends_a_stream_too_large_to_judge_without_its_held_calls(served, restrictive, fmt):
    agent = new_agent()
    req = request(served, fmt, restrictive, ask_blocked_call_after(2 * JUDGE_LIMIT), True, agent)
    status, read, tail = relay(served, req)
    assert status == 200  # the stream had begun: its end is the provider's own error event
    assert b"error" in tail
    assert b"/etc/passwd" not in tail and b"read_file" not in tail
    assert read < 2 * JUDGE_LIMIT  # the rest of the answer was not relayed
    (item,) = served.wait_for(lambda i: i["status"] == 502, timeout=30, agent_id=agent)
    detail = served.detail(item["interaction_id"])
    assert "too large to judge" in detail["error"]
    assert any(d["kind"] == "answer_unjudged" and d["enforced"] for d in detail["response_decisions"])


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_permissive_relays_an_answer_too_large_to_judge_and_records_so(served, permissive, fmt, stream):
    agent = new_agent()
    req = request(served, fmt, permissive, ask_blocked_call_after(2 * JUDGE_LIMIT), stream, agent)
    status, read, tail = relay(served, req)
    assert status == 200 and read > 2 * JUDGE_LIMIT
    assert b"read_file" in tail  # permissive: the call is relayed
    (item,) = served.wait_for(lambda i: i["status"] == 200, timeout=30, agent_id=agent)
    decisions = served.detail(item["interaction_id"])["response_decisions"]
    assert [(d["kind"], d["enforced"]) for d in decisions] == [("answer_unjudged", False)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_restrictive_still_judges_answers_within_the_limit(served, restrictive, fmt):
    """The cap only bounds: an answer under it is judged as always (the blocked call becomes a refusal)."""
    agent = new_agent()
    status, _, tail = relay(served, request(served, fmt, restrictive, ask_blocked_call_after(1000), False, agent))
    assert status == 200
    assert b"denied by a tool invocation policy" in tail
