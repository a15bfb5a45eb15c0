"""No secret anywhere: a Warden key, the provider keys a profile holds and the master key appear in no API answer,
page, log line, event, stored row or metric, after the profiles page made a managed profile with a credential and a
key, and an SDK used that key (and a revoked one)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import openai
import pytest
from playwright.sync_api import expect

from tests.conftest import MASTER_KEY
from tests.support.agents import new_agent
from tests.support.browser import Browser, chromium
from tests.support.keys import PROVIDER_KEYS, create_key, create_profile, revoke
from tests.support.published import published_events

PAGE_CREDENTIAL = "sk-proj-typedIntoThePage" + "Z9y8X7w6V5u4"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as running:
        yield running


@pytest.fixture(scope="module")
def published(warden) -> list[str]:
    return published_events(warden, "keys-audit")


def test_the_page_makes_a_managed_profile_and_a_key_and_no_secret_leaks(browser, warden, published, caplog):
    caplog.set_level(logging.DEBUG)
    name = f"managed-{new_agent()}"
    agent = new_agent("paged")
    page = browser.page(warden.url)
    page.goto("/profiles")
    page.click("#new-profile")
    page.fill("#f-name", name)
    page.select_option("#f-auth", "managed")
    page.select_option("#f-cred-provider", "openai")
    page.fill("#f-cred-secret", PAGE_CREDENTIAL)
    page.click("#save")
    card = page.locator(".profile", has=page.locator(".name", has_text=name))
    expect(card).to_contain_text("managed keys")
    expect(card.locator(".credentials")).to_contain_text("openai (set)")
    profile_id = card.get_attribute("data-id")
    card.locator(".key-agent").fill(agent)
    card.locator(".create-key").click()
    secret_box = card.locator(".secret-once code.secret")
    expect(secret_box).to_have_count(1)
    secret = secret_box.inner_text()
    assert secret.startswith("wk_")
    expect(card.locator(".key-list .prefix")).to_contain_text(secret[:11])

    client = openai.OpenAI(base_url=f"{warden.url}/v1/openai", api_key=secret, max_retries=0)
    answer = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "echo: hi"
    stream = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "echo: hi"
    revoked = create_key(warden, profile_id, new_agent("revoked"))
    revoke(warden, revoked)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{warden.url}/v1/openai", api_key=revoked.secret, max_retries=0).models.list()
    # Two requests were answered; the streamed one is stored once its tokens are counted, so wait for both.
    items = warden.wait_for(lambda i: i["status"] == 200, timeout=60, count=2, agent_id=agent)
    assert len(items) == 2
    warden.wait_for(lambda i: i["status"] == 401, agent_id=revoked.agent_id)

    secrets = {
        "warden key": secret,
        "revoked key": revoked.secret,
        "page credential": PAGE_CREDENTIAL,
        "master key": MASTER_KEY,
        **{f"{p} credential": k for p, k in PROVIDER_KEYS.items()},
    }
    # The page after a reload, and every answer of the API.
    page.reload()
    expect(card.locator(".key-list .prefix")).to_have_count(1)
    seen = {"page": page.content()}
    for path in (
        "/api/profiles",
        f"/api/profiles/{profile_id}",
        "/api/keys?include_revoked=true",
        f"/api/interactions?agent_id={agent}",
        f"/api/interactions?agent_id={revoked.agent_id}",
        "/metrics",
        "/profiles",
    ):
        seen[path] = httpx.get(f"{warden.url}{path}", timeout=10).text
    for item in items:
        seen[item["interaction_id"]] = httpx.get(f"{warden.url}/api/interactions/{item['interaction_id']}").text
        page.goto(f"/logs/{item['interaction_id']}")
        expect(page.locator("code.key-prefix")).to_have_text(secret[:11] + "…")  # the detail page names the key
        seen[f"/logs/{item['interaction_id']}"] = page.content()
    seen["events"] = "\n".join(published)
    assert any(agent in event for event in published)
    seen["logs"] = "\n".join(f"{r.getMessage()} {r.args} {getattr(r, 'fields', '')}" for r in caplog.records)

    async def rows(embedded) -> str:
        found = await embedded.store.select(
            "SELECT * FROM warden.interactions FINAL WHERE agent_id IN ({a:String}, {b:String})",
            {"a": agent, "b": revoked.agent_id},
        )
        copies = await embedded.store.select(
            "SELECT * FROM warden.interactions_by_id WHERE agent_id = {a:String}", {"a": agent}
        )
        return repr(found) + repr(copies)

    seen["rows"] = warden.call(rows)
    assert agent in seen["rows"]
    # On disk: the profiles' and keys' files hold ciphertexts and hashes only.
    data_dir = warden.settings.data_dir
    for stored in ("profiles.json", "profiles.json.journal", "keys.json", "keys.json.journal"):
        path = data_dir / stored
        if path.exists():
            seen[stored] = path.read_text()
    for where, text in seen.items():
        for what, value in secrets.items():
            assert value not in text, f"the {what} is in {where}"


def test_the_page_rotates_and_revokes_a_key(browser, warden):
    profile_id = create_profile(warden)
    key = create_key(warden, profile_id, new_agent("paged"))
    page = browser.page(warden.url)
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto("/profiles")
    card = page.locator(f'.profile[data-id="{profile_id}"]')
    row = card.locator(f'.key[data-id="{key.id}"]')
    expect(row.locator(".prefix")).to_have_text(key.prefix + "…")
    row.locator(".rotate-key").click()
    fresh = card.locator(".secret-once code.secret")
    expect(fresh).to_have_count(1)
    secret = fresh.inner_text()
    assert secret.startswith("wk_") and secret != key.secret
    listed = httpx.get(f"{warden.url}/api/keys/{key.id}", timeout=10).json()
    assert listed["prefix"] == secret[:11] and listed["previous_prefixes"][0]["prefix"] == key.prefix
    expect(row.locator(".prefix")).to_have_text(secret[:11] + "…")
    row.locator(".revoke-key").click()
    expect(row).to_have_count(0)  # revoked keys leave the list
    assert httpx.get(f"{warden.url}/api/keys/{key.id}", timeout=10).json()["state"] == "revoked"
