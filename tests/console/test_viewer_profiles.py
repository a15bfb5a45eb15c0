"""The profiles page (/profiles) in a real browser over the profiles admin API: list, create, edit, delete, copy a
connect URL, and a page that still makes sense when the API is not there."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import expect

from tests.support.browser import Browser, chromium

POLICY = {"tool": "send_email", "action": "block_when_context_is_untrusted", "reason": "no mail from untrusted data"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as running:
        yield running


def card(page, name: str):
    return page.locator(".profile", has=page.locator(".name", has_text=name))


def test_create_edit_copy_and_delete_a_profile(browser, warden):
    name = "Team <b>A</b> <script>window.__pwned=1</script>"
    page = browser.page(warden.url, permissions=["clipboard-read", "clipboard-write"])
    page.goto("/profiles")
    expect(page.locator("#profiles-status")).to_contain_text("profile")
    expect(card(page, "Default")).to_have_count(1)

    page.click("#new-profile")
    page.fill("#f-name", name)
    page.select_option("#f-mode", "restrictive")
    page.check("#f-redact")
    page.fill("#f-policies", json.dumps({"tool_invocation_policies": [POLICY], "trusted_data_policies": []}))
    page.click("#save")
    created = card(page, name)
    expect(created).to_have_count(1)
    expect(page.locator("#editor")).to_be_hidden()
    expect(created.locator(".name")).to_have_text(name)  # as text, not markup
    assert page.evaluate("typeof window.__pwned") == "undefined"
    expect(created).to_contain_text("restrictive")
    expect(created).to_contain_text("masks secrets")
    profile_id = created.get_attribute("data-id")
    stored = httpx.get(f"{warden.url}/api/profiles/{profile_id}").json()
    assert stored["name"] == name and stored["mode"] == "restrictive" and stored["redact_secrets"] is True
    assert stored["tool_invocation_policies"] == [{**POLICY, "conditions": []}]

    # Each connect URL is shown with a copy button that puts exactly that URL on the clipboard.
    openai_url = stored["connect_urls"]["openai"]
    row_url = created.locator(".connect code.url", has_text=openai_url)
    expect(row_url).to_have_count(1)
    copy = created.locator(".connect button.copy").nth(list(stored["connect_urls"]).index("openai"))
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == openai_url
    browser.screenshot(page, "profiles")

    # Edit: bad JSON and a policy the API refuses are both explained; a good one is saved.
    created.locator("button.edit").click()
    expect(page.locator("#f-name")).to_have_value(name)
    assert json.loads(page.input_value("#f-policies"))["tool_invocation_policies"][0]["tool"] == "send_email"
    page.fill("#f-policies", "{not json")
    page.click("#save")
    expect(page.locator("#editor-error")).to_contain_text("not valid JSON")
    page.fill("#f-policies", json.dumps({"tool_invocation_policies": [{"tool": "x", "action": "explode"}]}))
    page.click("#save")
    expect(page.locator("#editor-error")).to_contain_text("Not saved")
    expect(page.locator("#editor-error")).to_contain_text("action")
    page.select_option("#f-mode", "permissive")
    page.fill("#f-policies", json.dumps({"tool_invocation_policies": [], "trusted_data_policies": []}))
    page.click("#save")
    expect(page.locator("#editor")).to_be_hidden()
    expect(card(page, name)).to_contain_text("permissive")
    stored = httpx.get(f"{warden.url}/api/profiles/{profile_id}").json()
    assert stored["mode"] == "permissive" and stored["tool_invocation_policies"] == []

    page.once("dialog", lambda dialog: dialog.accept())
    card(page, name).locator("button.delete").click()
    expect(card(page, name)).to_have_count(0)
    assert httpx.get(f"{warden.url}/api/profiles/{profile_id}").status_code == 404
    assert not page.errors  # type: ignore[attr-defined]


def test_the_page_says_so_when_the_profiles_api_is_unavailable(browser, warden):
    page = browser.page(warden.url)
    page.route("**/api/profiles", lambda route: route.fulfill(status=404, body="Not Found"))
    page.goto("/profiles")
    expect(page.locator("#profiles-status")).to_have_text("profiles API unavailable")
    expect(page.locator("#new-profile")).to_be_hidden()
    expect(page.locator(".profile")).to_have_count(0)


def test_budgets_and_rate_limits_are_shown_and_kept_by_an_edit(browser, warden):
    name = f"limited-{uuid.uuid4().hex[:8]}"
    spec = {
        "name": name,
        "budgets": [{"scope": "agent", "period": "day", "usd": 5}],
        "rate_limits": [{"scope": "user", "requests_per_minute": 60}],
    }
    profile_id = httpx.post(f"{warden.url}/api/profiles", json=spec).json()["id"]
    page = browser.page(warden.url)
    page.goto("/profiles")
    shown = card(page, name)
    expect(shown.locator(".badge.limits")).to_have_text("$5 / day per agent · 60 req/min per user")
    shown.locator("button.edit").click()
    page.fill("#f-name", name + " renamed")
    page.click("#save")
    expect(card(page, name + " renamed")).to_have_count(1)
    stored = httpx.get(f"{warden.url}/api/profiles/{profile_id}").json()
    assert stored["budgets"] == [{"scope": "agent", "period": "day", "usd": 5.0}]
    assert stored["rate_limits"] == [{"scope": "user", "requests_per_minute": 60, "tokens_per_minute": None}]
