"""The logs list page (/logs) in a real browser: filters kept in the URL, pagination, marks, live refresh."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import openai
import pytest
from playwright.sync_api import expect

from tests.conftest import API_KEY
from tests.support.agents import attribution, new_agent
from tests.support.browser import Browser, chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as running:
        yield running


def send(warden, agent: str, user: str | None, text: str, model: str = "gpt-4o") -> None:
    sdk = openai.OpenAI(
        base_url=f"{warden.url}/v1/openai", api_key=API_KEY, default_headers=attribution(agent, user), max_retries=0
    )
    sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])


def recorded(warden, count: int, **params) -> list[dict]:
    """Wait until ``count`` finished interactions match ``params``; returns them, newest first."""
    deadline = time.monotonic() + 15
    while True:
        items = warden.interactions(**params)["items"]
        if len(items) >= count and all(i["status"] is not None for i in items):
            return items
        assert time.monotonic() < deadline, f"{count} interactions not recorded for {params}"
        time.sleep(0.05)


def agent_cells(page) -> list[str]:
    return page.locator("#rows tr.row td.agent").all_inner_texts()


def test_the_agent_filter_shows_only_that_agents_rows_and_stays_in_the_url(browser, warden):
    alice_agent, bob_agent, user = new_agent("alice"), new_agent("bob"), new_agent("user")
    send(warden, alice_agent, user, "first from alice")
    send(warden, alice_agent, user, "second from alice", model="gpt-4o-mini")
    send(warden, bob_agent, user, "one from bob")
    recorded(warden, 2, agent_id=alice_agent)
    recorded(warden, 1, agent_id=bob_agent)

    page = browser.page(warden.url)
    page.goto("/logs")
    expect(page.locator("h1")).to_have_text("Interactions")
    assert bob_agent in agent_cells(page)

    page.fill("input[name=agent_id]", alice_agent)
    page.click("button[type=submit]")
    page.wait_for_url(f"**/logs?*agent_id={alice_agent}*")
    assert agent_cells(page) == [alice_agent, alice_agent]
    # Newest first, and every column a reader needs is there.
    first = page.locator("#rows tr.row").first
    expect(first).to_contain_text("gpt-4o-mini")
    expect(first).to_contain_text("openai")
    expect(first).to_contain_text(user)
    expect(first.locator("td.status")).to_have_text("200")
    browser.screenshot(page, "logs-filtered-by-agent")

    # The filtered view is a shareable address: opening it afresh gives the same rows and a filled-in form.
    shared = browser.page(warden.url)
    shared.goto(page.url)
    expect(shared.locator("input[name=agent_id]")).to_have_value(alice_agent)
    assert agent_cells(shared) == [alice_agent, alice_agent]

    # Filters combine: agent and model.
    page.select_option("select[name=status]", "2xx")
    page.fill("input[name=model]", "gpt-4o-mini")
    page.click("button[type=submit]")
    page.wait_for_url("**model=gpt-4o-mini*")
    assert agent_cells(page) == [alice_agent]
    assert "status=2xx" in page.url
    assert not page.errors and not page.console_errors  # type: ignore[attr-defined]


def test_user_filter_and_the_seen_ids_suggestions(browser, warden):
    agent, user = new_agent(), new_agent("carol")
    send(warden, agent, user, "hello")
    send(warden, new_agent(), None, "someone else")
    recorded(warden, 1, user_id=user)

    page = browser.page(warden.url)
    page.goto("/logs?" + str(httpx.QueryParams({"user_id": user})))
    assert page.locator("#rows tr.row td.user").all_inner_texts() == [user]
    assert page.locator("#rows tr.row td.agent").all_inner_texts() == [agent]
    # The suggestions are ids actually seen, newest first (cached for a few seconds, so not necessarily this
    # test's): each one finds interactions.
    for column in ("agent_id", "user_id"):
        values = page.locator(f"#seen-{column} option").evaluate_all("options => options.map(o => o.value)")
        assert values, f"no {column} suggestions"
        for value in values[:3]:
            assert warden.interactions(**{column: value, "limit": 1})["items"], value


def test_older_link_walks_pages_newest_first(browser, warden):
    agent = new_agent()
    for n in range(5):
        send(warden, agent, None, f"message {n}")
    ids = [i["interaction_id"] for i in recorded(warden, 5, agent_id=agent, limit=10)]
    assert len(ids) == 5

    page = browser.page(warden.url)
    page.goto(f"/logs?agent_id={agent}&limit=2")
    seen: list[str] = []
    for _ in range(5):
        seen += page.locator("#rows tr.row").evaluate_all("rows => rows.map(r => r.dataset.id)")
        older = page.locator("#older")
        if older.count() == 0:
            break
        older.click()
        page.wait_for_url("**cursor=*")
        expect(page.locator("#newest")).to_be_visible()
    assert seen == ids
    # Every filter survives paging.
    assert f"agent_id={agent}" in page.url and "limit=2" in page.url


def test_blocked_and_flagged_interactions_are_marked(browser, warden):
    agent = new_agent()
    blocked_id, flagged_id, plain_id = (str(uuid.uuid4()) for _ in range(3))
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    rows = [
        {
            "interaction_id": i,
            "started_at": now,
            "agent_id": agent,
            "user_id": "",
            "session_id": "",
            "profile_id": "default",
            "provider": "openai",
            "model": "gpt-4o",
            "status": 200,
            "blocked": int(i == blocked_id),
            "latency_ms": 12.0,
        }
        for i in (blocked_id, flagged_id, plain_id)
    ]
    violation = {
        "violation_id": f"v-{flagged_id}",
        "interaction_id": flagged_id,
        "detected_at": now,
        "detector": "test",
        "category": "secret",
        "severity": "high",
        "severity_rank": 3,
        "score": 0.9,
        "action": "logged",
        "location": "request.messages[0]",
        "excerpt": "sk-****",
        "profile_id": "default",
        "agent_id": agent,
        "user_id": "",
    }

    async def insert(embedded):
        await embedded.store.insert("warden.interactions", rows)
        await embedded.store.insert("warden.violations", [violation])

    warden.call(insert)
    page = browser.page(warden.url)
    page.goto(f"/logs?agent_id={agent}")
    expect(page.locator(f'tr[data-id="{blocked_id}"]')).to_have_class("row blocked")
    expect(page.locator(f'tr[data-id="{blocked_id}"] td.marks')).to_have_text("BLOCKED")
    expect(page.locator(f'tr[data-id="{flagged_id}"] td.marks')).to_have_text("1 flagged (high)")
    expect(page.locator(f'tr[data-id="{plain_id}"] td.marks')).to_have_text("")
    browser.screenshot(page, "logs-marks")

    page.select_option("select[name=blocked]", "true")
    page.click("button[type=submit]")
    page.wait_for_url("**blocked=true*")
    assert page.locator("#rows tr.row").evaluate_all("rows => rows.map(r => r.dataset.id)") == [blocked_id]
    page.goto(f"/logs?agent_id={agent}&min_severity=medium")
    assert page.locator("#rows tr.row").evaluate_all("rows => rows.map(r => r.dataset.id)") == [flagged_id]


def test_a_bad_filter_is_explained_on_the_page(browser, warden):
    page = browser.page(warden.url)
    response = page.goto("/logs?since=yesterday")
    assert response is not None and response.status == 400
    expect(page.locator("#results .error")).to_contain_text("since must be an ISO 8601 time")
    expect(page.locator("input[name=since]")).to_be_visible()


def test_live_refresh_brings_in_new_interactions(browser, warden):
    agent = new_agent()
    send(warden, agent, None, "before")
    recorded(warden, 1, agent_id=agent)
    page = browser.page(warden.url)
    page.goto(f"/logs?agent_id={agent}")
    expect(page.locator("#rows tr.row")).to_have_count(1)
    page.check("#live")
    assert "live=1" in page.url
    send(warden, agent, None, "after")
    expect(page.locator("#rows tr.row")).to_have_count(2, timeout=20_000)
    expect(page.locator("#live-status")).to_contain_text("updated")
    page.uncheck("#live")
    assert "live=1" not in page.url
    assert not page.errors  # type: ignore[attr-defined]


def test_a_time_range_narrows_the_list(browser, warden):
    agent = new_agent()
    for n in range(3):
        send(warden, agent, None, f"message {n}")
    newest, middle, oldest = recorded(warden, 3, agent_id=agent)
    since = middle["started_at"]

    page = browser.page(warden.url)
    page.goto("/logs?" + str(httpx.QueryParams({"agent_id": agent, "since": since})))
    ids = page.locator("#rows tr.row").evaluate_all("rows => rows.map(r => r.dataset.id)")
    assert ids == [newest["interaction_id"], middle["interaction_id"]]
    # The form shows the time to the millisecond (the browser drops trailing zeros, so compare as times).
    shown = datetime.fromisoformat(page.input_value("input[name=since]"))
    started = datetime.fromisoformat(middle["started_at"]).replace(tzinfo=None)
    assert shown == started.replace(microsecond=started.microsecond // 1000 * 1000)

    page.goto("/logs?" + str(httpx.QueryParams({"agent_id": agent, "until": since})))
    ids = page.locator("#rows tr.row").evaluate_all("rows => rows.map(r => r.dataset.id)")
    assert ids == [oldest["interaction_id"]]

    # Through the form: a range ending before the first of these interactions finds none of them.
    page.goto("/logs?" + str(httpx.QueryParams({"agent_id": agent})))
    page.fill("input[name=until]", "2000-01-01T00:00:00")
    page.click("button[type=submit]")
    page.wait_for_url("**until=2000-01-01T00*")
    expect(page.locator("#rows tr.empty")).to_have_text("No interactions match.")
