"""Distributed Warden for real: two ingresses, a logger, a guard and a console, each its own process, over a real
Kafka broker and a ClickHouse server. Traffic goes through both ingresses with the official SDKs (OpenAI, Anthropic,
google-genai; streamed and not) to the fake upstreams, then is read back the way people read it: the console's API
by agent, by user and by id, the logs viewer in a browser, and the record in ClickHouse itself. Every interaction is
there exactly once; the guard's finding is on the record; a profile created on the console is in force on both
ingresses."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from playwright.sync_api import expect

from tests.conftest import API_KEY
from tests.distributed.test_guard_on_kafka import POISONED
from tests.support.agents import attribution
from tests.support.browser import Browser, chromium
from tests.support.processes import WardenProcess
from tests.support.warden_server import free_port

RUN = uuid.uuid4().hex[:8]
TOKEN = "admin-" + secrets.token_urlsafe(16)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PER_KIND = 3
"""Requests per (ingress, SDK, streamed or not)."""
WAIT_S = 120
"""Safety bound so a lost interaction fails the test instead of hanging it; nothing is timed."""
MODELS = {"openai": "gpt-4o", "anthropic": "claude-sonnet-4-5", "gemini": "gemini-2.5-flash"}
USERS = (f"alice-{RUN}", f"bob-{RUN}")
SECRET = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0" * 3


@dataclass
class Stack:
    ingresses: list[str]
    console: str
    clickhouse: Any
    processes: dict[str, WardenProcess] = field(default_factory=dict)

    def api(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.console}{path}", params=params, headers=AUTH, timeout=30)
        response.raise_for_status()
        return response.json()

    def listed(self, **params: Any) -> list[dict[str, Any]]:
        """Every item of a list, page after page."""
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self.api("/api/interactions", **params, limit=100, **({"cursor": cursor} if cursor else {}))
            items += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return items


def _cli(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "warden.cli", *args], env={**os.environ, **env}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def stack(
    kafka_bootstrap, clickhouse_server, fake_openai, fake_anthropic, fake_gemini, tmp_path_factory
) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("distributed")
    env = {
        "WARDEN_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "WARDEN_CLICKHOUSE_URL": clickhouse_server.url,
        "WARDEN_ADMIN_TOKEN": TOKEN,
        "WARDEN_HOST": "127.0.0.1",
        "WARDEN_OPENAI_BASE_URL": fake_openai.url + "/v1",
        "WARDEN_ANTHROPIC_BASE_URL": fake_anthropic.base_url,
        "WARDEN_GEMINI_BASE_URL": fake_gemini.base_url,
        "WARDEN_LOGGER_MAX_WAIT_S": "0.2",
    }
    # What an operator runs first (README, distributed mode): the topics and the schema.
    _cli(["topics", "create", "--partitions", "3"], env)
    _cli(["migrate"], env)
    processes: dict[str, WardenProcess] = {}
    try:
        for role in ("logger", "guard"):
            port = free_port()
            processes[role] = WardenProcess(
                [role, "--data-dir", str(base / role), "--metrics-port", str(port)],
                env,
                ready_url=f"http://127.0.0.1:{port}/metrics",
            ).start()
        console_port = free_port()
        processes["console"] = WardenProcess(
            ["console", "--port", str(console_port), "--data-dir", str(base / "console")],
            env,
            ready_url=f"http://127.0.0.1:{console_port}/healthz",
        ).start()
        ingresses = []
        for n in range(2):
            port = free_port()
            processes[f"ingress-{n}"] = WardenProcess(
                ["ingress", "--port", str(port), "--data-dir", str(base / f"ingress-{n}")],
                env,
                ready_url=f"http://127.0.0.1:{port}/healthz",
            ).start()
            ingresses.append(f"http://127.0.0.1:{port}")
        yield Stack(ingresses, f"http://127.0.0.1:{console_port}", clickhouse_server, processes)
    finally:
        for process in processes.values():
            process.interrupt()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as running:
        yield running


# --- traffic through the official SDKs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    ingress: int
    provider: str
    stream: bool
    agent: str
    user: str
    marker: str
    answer: str
    """The text the client got."""
    header_id: str | None
    """``X-Warden-Interaction-Id`` where the SDK exposes the response headers."""

    @property
    def prompt(self) -> str:
        return f"say {self.marker}"


def ask_openai(base: str, headers: dict[str, str], prompt: str, stream: bool) -> tuple[str, str | None]:
    sdk = openai.OpenAI(base_url=f"{base}/v1/openai", api_key=API_KEY, max_retries=0, default_headers=headers)
    messages = [{"role": "user", "content": prompt}]
    raw = sdk.chat.completions.with_raw_response.create(model=MODELS["openai"], messages=messages, stream=stream)
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    else:
        text = raw.parse().choices[0].message.content or ""
    return text, raw.headers.get("x-warden-interaction-id")


def ask_anthropic(base: str, headers: dict[str, str], prompt: str, stream: bool) -> tuple[str, str | None]:
    sdk = anthropic.Anthropic(base_url=f"{base}/v1/anthropic", api_key=API_KEY, max_retries=0, default_headers=headers)
    messages = [{"role": "user", "content": prompt}]
    if stream:
        with sdk.messages.stream(model=MODELS["anthropic"], max_tokens=64, messages=messages) as events:
            text = "".join(events.text_stream)
            return text, events.response.headers.get("x-warden-interaction-id")
    raw = sdk.messages.with_raw_response.create(model=MODELS["anthropic"], max_tokens=64, messages=messages)
    return raw.parse().content[0].text, raw.headers.get("x-warden-interaction-id")


def ask_gemini(base: str, headers: dict[str, str], prompt: str, stream: bool) -> tuple[str, str | None]:
    sdk = genai.Client(
        api_key=API_KEY, http_options={"base_url": f"{base}/v1/gemini", "api_version": "v1beta", "headers": headers}
    )
    if stream:
        chunks = list(sdk.models.generate_content_stream(model=MODELS["gemini"], contents=prompt))
        answer, last = "".join(c.text or "" for c in chunks), chunks[-1]
    else:
        last = sdk.models.generate_content(model=MODELS["gemini"], contents=prompt)
        answer = last.text or ""
    raw = last.sdk_http_response
    return answer, (raw.headers or {}).get("x-warden-interaction-id") if raw is not None else None


ASK: dict[str, Callable[[str, dict[str, str], str, bool], tuple[str, str | None]]] = {
    "openai": ask_openai,
    "anthropic": ask_anthropic,
    "gemini": ask_gemini,
}


@pytest.fixture(scope="module")
def traffic(stack: Stack) -> list[Sent]:
    sent: list[Sent] = []
    for ingress, base in enumerate(stack.ingresses):
        for provider, ask in ASK.items():
            for stream in (False, True):
                agent = f"e2e-{RUN}-{ingress}-{provider}-{'stream' if stream else 'whole'}"
                for _ in range(PER_KIND):
                    user = USERS[len(sent) % 2]
                    marker = f"m{RUN}n{len(sent):03d}"
                    answer, header_id = ask(base, attribution(agent, user), f"say {marker}", stream)
                    sent.append(Sent(ingress, provider, stream, agent, user, marker, answer, header_id))
    return sent


def wait_until(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def recorded(stack: Stack, traffic: list[Sent]) -> dict[str, dict[str, Any]]:
    """The detail of every interaction the API lists for the run's agents, once each is complete, by id."""
    agents = sorted({s.agent for s in traffic})

    def complete() -> list[dict[str, Any]] | None:
        items = [item for agent in agents for item in stack.listed(agent_id=agent)]
        return items if len(items) >= len(traffic) and all(not i["in_flight"] for i in items) else None

    items = wait_until(complete, "every interaction listed and complete")
    return {item["interaction_id"]: stack.api(f"/api/interactions/{item['interaction_id']}") for item in items}


# --- the tests ---------------------------------------------------------------------------------------------------


def test_every_answer_reached_the_client(traffic):
    assert len(traffic) == 2 * 3 * 2 * PER_KIND
    for s in traffic:
        assert s.answer == f"echo: {s.prompt}", s


def test_every_interaction_is_recorded_exactly_once_with_what_was_said(stack, traffic, recorded):
    by_marker: dict[str, list[str]] = {}
    for interaction_id, detail in recorded.items():
        for s in traffic:
            if s.marker in (detail["request_received"] or ""):
                by_marker.setdefault(s.marker, []).append(interaction_id)
    assert {s.marker: len(by_marker.get(s.marker, [])) for s in traffic} == {s.marker: 1 for s in traffic}
    assert len(recorded) == len(traffic)  # nothing listed that was not sent
    for s in traffic:
        (interaction_id,) = by_marker[s.marker]
        if s.header_id is not None:
            assert s.header_id == interaction_id
        detail = recorded[interaction_id]
        assert (detail["agent_id"], detail["user_id"], detail["provider"]) == (s.agent, s.user, s.provider)
        assert detail["model"] == MODELS[s.provider] and detail["stream"] is s.stream
        assert detail["status"] == 200 and not detail["in_flight"] and detail["response_body"]
        assert API_KEY not in json.dumps(detail)  # credentials are forwarded, never stored
        if not s.stream:
            assert s.answer in detail["response_body"]
    # The OpenAI and Anthropic SDKs expose the response headers, streamed or not: their ids are the recorded ones.
    assert all(s.header_id for s in traffic if s.provider != "gemini")


def test_lists_by_agent_and_by_user_hold_each_interaction_once_newest_first(stack, traffic, recorded):
    for agent in {s.agent for s in traffic}:
        items = stack.listed(agent_id=agent)
        assert len(items) == PER_KIND and {i["agent_id"] for i in items} == {agent}
        times = [i["started_at"] for i in items]
        assert times == sorted(times, reverse=True)
    by_user = [i["interaction_id"] for user in USERS for i in stack.listed(user_id=user)]
    assert Counter(by_user) == Counter(list(recorded))  # each once, and only the run's
    for user in USERS:
        assert len(stack.listed(user_id=user)) == sum(1 for s in traffic if s.user == user)
        for agent in {s.agent for s in traffic}:
            both = stack.listed(user_id=user, agent_id=agent)
            assert len(both) == sum(1 for s in traffic if (s.user, s.agent) == (user, agent))
    # The newest interactions with nothing fixed (the page /logs opens on) include the run's last ones.
    newest = stack.api("/api/interactions", limit=500)["items"]
    assert {i["interaction_id"] for i in newest} >= set(recorded)


def test_the_record_in_clickhouse_holds_each_interaction_once(stack, traffic, recorded):
    answer = stack.clickhouse.query(
        "SELECT toString(interaction_id) AS id, count() AS n FROM warden.interactions FINAL "
        f"WHERE agent_id LIKE 'e2e-{RUN}-%' GROUP BY interaction_id FORMAT JSONEachRow"
    )
    counts = {row["id"]: row["n"] for row in map(json.loads, answer.splitlines())}
    assert counts == {interaction_id: 1 for interaction_id in recorded}


def test_the_viewer_lists_and_shows_them(stack, traffic, recorded, browser):
    page = browser.page(stack.console, extra_http_headers=AUTH)
    for s in (traffic[0], traffic[-1]):
        page.goto(f"/logs?agent_id={s.agent}")
        rows = page.locator("#rows tr.row").evaluate_all("rows => rows.map(r => r.dataset.id)")
        assert sorted(rows) == sorted(i for i, d in recorded.items() if d["agent_id"] == s.agent)
    page.goto(f"/logs?user_id={USERS[0]}&limit=100")
    rows = page.locator("#rows tr.row").evaluate_all("rows => rows.map(r => r.dataset.id)")
    assert sorted(rows) == sorted(i for i, d in recorded.items() if d["user_id"] == USERS[0])
    page.goto("/logs")
    expect(page.locator("#rows tr.row").first).to_be_visible()
    browser.screenshot(page, "distributed-logs")
    # One streamed and one whole answer of each provider, assembled on the detail page as the client read it.
    for provider in MODELS:
        for stream in (False, True):
            s = next(s for s in traffic if s.provider == provider and s.stream is stream)
            (interaction_id,) = [i for i, d in recorded.items() if s.marker in (d["request_received"] or "")]
            page.goto(f"/logs/{interaction_id}")
            expect(page.locator("#conversation")).to_contain_text(s.prompt)
            expect(page.locator("#answer")).to_contain_text(s.answer)
    assert page.errors == []


def test_a_violation_found_by_the_guard_shows_up(stack, browser):
    agent = f"e2e-{RUN}-poisoned"
    sdk = openai.OpenAI(
        base_url=f"{stack.ingresses[1]}/v1/openai",
        api_key=API_KEY,
        max_retries=0,
        default_headers=attribution(agent, USERS[1]),
    )
    raw = sdk.chat.completions.with_raw_response.create(**POISONED)
    interaction_id = raw.headers["x-warden-interaction-id"]
    flagged = wait_until(
        lambda: stack.listed(agent_id=agent, violation_category="prompt_injection"), "the violation listed"
    )
    assert [i["interaction_id"] for i in flagged] == [interaction_id]
    detail = stack.api(f"/api/interactions/{interaction_id}")
    found = [v for v in detail["violations"] if v["category"] == "prompt_injection"]
    assert found and found[0]["severity"] in ("high", "critical")
    assert found[0]["location"] == "request.messages[2].tool_result"
    assert "attacker@evil.test" not in json.dumps(detail["violations"])  # the excerpt is redacted
    page = browser.page(stack.console, extra_http_headers=AUTH)
    page.goto(f"/logs?agent_id={agent}")
    expect(page.locator(f'tr[data-id="{interaction_id}"] td.marks')).to_contain_text("flagged")
    page.goto(f"/logs/{interaction_id}")
    expect(page.locator("#violations")).to_contain_text("prompt_injection")


def test_a_profile_created_on_the_console_is_in_force_on_both_ingresses(stack, fake_openai):
    created = httpx.post(
        f"{stack.console}/api/profiles",
        json={"name": f"e2e-{RUN}", "mode": "restrictive", "redact_secrets": True},
        headers=AUTH,
        timeout=10,
    )
    assert created.status_code == 201, created.text
    profile_id = created.json()["id"]
    for n, base in enumerate(stack.ingresses):
        agent = f"e2e-{RUN}-profile-{n}"
        sdk = openai.OpenAI(
            base_url=f"{base}/v1/openai/{profile_id}",
            api_key=API_KEY,
            max_retries=0,
            default_headers=attribution(agent),
        )

        def ask(sdk: openai.OpenAI = sdk) -> str | None:
            try:
                answer = sdk.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": f"my key is {SECRET}"}]
                )
            except openai.NotFoundError:  # not replicated to this ingress yet
                return None
            return answer.choices[0].message.content

        answer = wait_until(ask, f"profile {profile_id} on ingress {n}")
        assert SECRET not in answer and "[REDACTED:" in answer  # the upstream echoes what it was sent
        (item,) = wait_until(lambda a=agent: stack.listed(agent_id=a, status="200"), "the redacted one recorded")
        assert item["profile_id"] == profile_id
        detail = stack.api(f"/api/interactions/{item['interaction_id']}")
        assert SECRET not in json.dumps(detail) and "[REDACTED:" in detail["request_received"]


def test_the_services_ran_without_errors(stack, traffic, recorded):
    for name, process in stack.processes.items():
        assert process.proc is not None and process.proc.poll() is None, f"{name} exited: {process.output()}"
