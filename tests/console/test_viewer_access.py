"""Who may see the pages: with ``WARDEN_ADMIN_TOKEN`` set, browsers are sent to a login form that sets an HttpOnly
cookie; scripts keep getting 401 JSON. Runs ``warden serve`` as a subprocess (the shared Warden has no token)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import expect

from tests.support.browser import Browser, chromium
from tests.support.serve_process import ServeProcess

TOKEN = "let-me-in-0123456789"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as running:
        yield running


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    env = {
        "WARDEN_ADMIN_TOKEN": TOKEN,
        # A routing table of the configuration's own, which the profiles page lists read-only.
        "WARDEN_DEPLOYMENTS": json.dumps({"from-file": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1"}}),
        "WARDEN_MODEL_ALIASES": json.dumps({"openai/file-model": {"targets": [{"deployment": "from-file"}]}}),
    }
    process = ServeProcess(tmp_path_factory.mktemp("guarded"), env=env).start()
    yield process
    process.kill()


def test_pages_redirect_to_login_and_the_api_still_answers_401(guarded):
    page = httpx.get(f"{guarded.url}/logs", params={"agent_id": "a1"})
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2Flogs%3Fagent_id%3Da1"
    assert httpx.get(f"{guarded.url}/profiles").headers["location"] == "/login?next=%2Fprofiles"
    api = httpx.get(f"{guarded.url}/api/interactions")
    assert api.status_code == 401 and api.json()["error"]["type"] == "authentication_error"
    # The live-refresh fragment is fetched by a script: it gets the status, not a form.
    assert httpx.get(f"{guarded.url}/logs", params={"fragment": "rows"}).status_code == 401
    # With the token (header), pages answer directly.
    with_token = httpx.get(f"{guarded.url}/logs", headers={"Authorization": f"Bearer {TOKEN}"})
    assert with_token.status_code == 200 and "Interactions" in with_token.text
    assert httpx.get(f"{guarded.url}/static/viewer.css").status_code == 200


def test_login_only_sends_people_back_to_this_server(guarded):
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        response = httpx.post(f"{guarded.url}/login", data={"token": TOKEN, "next": target})
        assert response.status_code == 303
        assert response.headers["location"] == "/logs"
    wrong = httpx.post(f"{guarded.url}/login", data={"token": "nope", "next": "/logs"})
    assert wrong.status_code == 401 and "warden_session" not in wrong.headers.get("set-cookie", "")


def test_login_form_sets_an_httponly_cookie_that_opens_pages_and_api(browser, guarded):
    page = browser.page(guarded.url)
    page.goto("/logs?agent_id=a1")
    page.wait_for_url("**/login?next=*")
    expect(page.locator("h1")).to_have_text("Log in")
    browser.screenshot(page, "login")

    page.fill("#token", "wrong-token")
    page.click("form.login button[type=submit]")
    expect(page.locator("form.login .error")).to_have_text("That is not the admin token.")

    page.fill("#token", TOKEN)
    page.click("form.login button[type=submit]")
    page.wait_for_url("**/logs?agent_id=a1")
    expect(page.locator("input[name=agent_id]")).to_have_value("a1")
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "warden_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert "warden_session" not in page.evaluate("document.cookie")
    assert page.evaluate("fetch('/api/interactions').then(r => r.status)") == 200

    page.click("form.logout button")
    page.wait_for_url("**/login")
    page.goto("/profiles")
    page.wait_for_url("**/login?next=%2Fprofiles")


def test_the_logged_in_page_changes_upstream_routing_and_a_script_without_the_token_cannot(browser, guarded):
    page = browser.page(guarded.url)
    page.goto("/profiles")
    page.wait_for_url("**/login?next=%2Fprofiles")
    page.fill("#token", TOKEN)
    page.click("form.login button[type=submit]")
    page.wait_for_url("**/profiles")
    # The configuration file's table is listed, read-only (no buttons), and only with the token.
    expect(page.locator("tr.file-deployment")).to_contain_text("from-file")
    expect(page.locator("tr.file-alias")).to_contain_text("openai/file-model")
    expect(page.locator("tr.file-deployment button, tr.file-alias button")).to_have_count(0)
    assert httpx.get(f"{guarded.url}/api/routing/file").status_code == 401
    page.click("#new-deployment")
    page.fill("#d-name", "behind-login")
    page.fill("#d-provider", "openai")
    page.fill("#d-base-url", "http://127.0.0.1:9/v1")
    page.click("#deployment-save")
    expect(page.locator("tr.deployment[data-name='behind-login']")).to_have_count(1)
    admin = {"Authorization": f"Bearer {TOKEN}"}
    stored = httpx.get(f"{guarded.url}/api/deployments/behind-login", headers=admin)
    assert stored.status_code == 200 and stored.json()["base_url"] == "http://127.0.0.1:9/v1"
    # Without the token nothing is changed.
    refused = httpx.delete(f"{guarded.url}/api/deployments/behind-login")
    assert refused.status_code == 401
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("tr.deployment[data-name='behind-login'] button.delete").click()
    expect(page.locator("tr.deployment[data-name='behind-login']")).to_have_count(0)
    assert httpx.get(f"{guarded.url}/api/deployments/behind-login", headers=admin).status_code == 404
