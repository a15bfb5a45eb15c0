"""The profiles page's upstream routing in a real browser: a deployment and a model alias made through the page are
what the admin API holds and what Warden routes by; an edit keeps the write-only credential, which the page never
receives; the API's refusals are shown as their sentences. The configuration file's table is listed read-only."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect
from starlette.applications import Starlette
from starlette.testclient import TestClient

from schemas.upstreams import DeploymentSpec, ModelAliasSpec
from services.console.upstreams_api import UpstreamsApi
from tests.conftest import API_KEY
from tests.fakes.upstream import FakeUpstream
from tests.routing.clients import ask
from tests.support.agents import new_agent
from tests.support.browser import Browser, chromium

SECRET = "sk-page-deployment-secret-0123456789"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as running:
        yield running


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream("openai").start()
    yield fake
    fake.stop()


def watched(browser: Browser, url: str) -> tuple[Page, list[bytes]]:
    """A page and every response body it receives (so a test can say what the page was ever given)."""
    page = browser.page(url)
    bodies: list[bytes] = []

    def keep(response) -> None:  # type: ignore[no-untyped-def]
        with contextlib.suppress(PlaywrightError):  # a redirect or an aborted load has no body to read
            bodies.append(response.body())

    page.on("response", keep)
    return page, bodies


def deployment_row(page: Page, name: str):
    return page.locator("tr.deployment[data-name='" + name + "']")


def test_deployments_and_aliases_are_made_edited_and_deleted_through_the_page(upstream, warden, browser):
    tag = uuid.uuid4().hex[:8]
    name, model, sent_model = f"page-{tag}", f"page-routed-{tag}", f"upstream-model-{tag}"
    page, bodies = watched(browser, warden.url)
    page.goto("/profiles")
    expect(page.locator("#new-deployment")).to_be_visible()

    # A new deployment, its credential typed once.
    page.click("#new-deployment")
    page.fill("#d-name", name)
    page.fill("#d-provider", "openai")
    page.fill("#d-base-url", upstream.base_url)
    page.fill("#d-credential", SECRET)
    page.fill("#d-settings", json.dumps({"weight": 1, "models": [sent_model]}))
    page.click("#deployment-save")
    expect(page.locator("#deployment-editor")).to_be_hidden()
    expect(deployment_row(page, name)).to_contain_text("set")
    stored = httpx.get(f"{warden.url}/api/deployments/{name}", timeout=10).json()
    assert stored["base_url"] == upstream.base_url and stored["credential"] == {"set": True}
    assert stored["models"] == [sent_model]

    # An alias naming a deployment that does not exist: the API's 422 is shown as its sentence, nothing is stored.
    page.click("#new-alias")
    page.fill("#a-provider", "openai")
    page.fill("#a-model", model)
    page.fill("#a-spec", json.dumps({"targets": [{"deployment": "no-such-deployment"}]}))
    page.click("#alias-save")
    expect(page.locator("#alias-error")).to_contain_text("Not saved")
    expect(page.locator("#alias-error")).to_contain_text("no deployment named 'no-such-deployment'")
    assert httpx.get(f"{warden.url}/api/model-aliases/openai/{model}", timeout=10).status_code == 404
    # Not JSON is explained before anything is sent.
    page.fill("#a-spec", "{targets")
    page.click("#alias-save")
    expect(page.locator("#alias-error")).to_contain_text("not valid JSON")
    page.fill("#a-spec", json.dumps({"targets": [{"deployment": name, "model": sent_model}], "max_attempts": 2}))
    page.click("#alias-save")
    expect(page.locator("#alias-editor")).to_be_hidden()
    expect(page.locator("tr.alias", has_text=f"openai/{model}")).to_have_count(1)
    browser.screenshot(page, "profiles-routing")
    alias = httpx.get(f"{warden.url}/api/model-aliases/openai/{model}", timeout=10).json()
    assert alias["targets"] == [{"deployment": name, "model": sent_model, "priority": 0}] and alias["max_attempts"] == 2

    # A request for the alias's model reaches the deployment, with the deployment's model and credential.
    for stream in (False, True):
        upstream.reset()
        text, _ = ask(warden, "openai", model, "hello", new_agent(), stream=stream)
        assert text, "no answer came back through the alias"
        assert upstream.last.body["model"] == sent_model
        assert upstream.last.header("authorization") == f"Bearer {SECRET}"
        assert API_KEY not in json.dumps(upstream.last.headers)

    # An edit that leaves the credential empty keeps the stored one.
    deployment_row(page, name).locator("button.edit").click()
    expect(page.locator("#d-name")).to_have_value(name)
    expect(page.locator("#d-credential")).to_have_value("")
    settings = json.loads(page.input_value("#d-settings"))
    assert settings["models"] == [sent_model] and "credential" not in settings
    page.fill("#d-settings", json.dumps({**settings, "weight": 3}))
    page.click("#deployment-save")
    expect(page.locator("#deployment-editor")).to_be_hidden()
    expect(deployment_row(page, name)).to_contain_text("3")
    stored = httpx.get(f"{warden.url}/api/deployments/{name}", timeout=10).json()
    assert stored["weight"] == 3 and stored["credential"] == {"set": True}
    upstream.reset()
    ask(warden, "openai", model, "hello again", new_agent(), stream=False)
    assert upstream.last.header("authorization") == f"Bearer {SECRET}"

    # A deployment an alias routes to cannot be deleted: the 409 says which alias.
    page.once("dialog", lambda dialog: dialog.accept())
    deployment_row(page, name).locator("button.delete").click()
    expect(page.locator("#routing-error")).to_contain_text(f"not deleted: model aliases route to it: openai/{model}")
    assert httpx.get(f"{warden.url}/api/deployments/{name}", timeout=10).status_code == 200

    # The credential is nowhere in the page: not in its markup, its fields, its storage or anything it was sent.
    assert SECRET not in page.content()
    fields = page.evaluate("Array.from(document.querySelectorAll('input, textarea')).map(e => e.value).join('\\n')")
    assert SECRET not in fields
    assert SECRET not in page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage)")
    assert bodies and not any(SECRET.encode() in body for body in bodies)

    # Removing the credential is a choice of its own, not what an empty field does.
    deployment_row(page, name).locator("button.edit").click()
    page.check("#d-drop-credential")
    page.click("#deployment-save")
    expect(deployment_row(page, name)).to_contain_text("none")
    assert httpx.get(f"{warden.url}/api/deployments/{name}", timeout=10).json()["credential"] == {"set": False}

    # The alias, then the deployment, deleted through the page.
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("tr.alias", has_text=f"openai/{model}").locator("button.delete").click()
    expect(page.locator("tr.alias", has_text=f"openai/{model}")).to_have_count(0)
    page.once("dialog", lambda dialog: dialog.accept())
    deployment_row(page, name).locator("button.delete").click()
    expect(deployment_row(page, name)).to_have_count(0)
    assert httpx.get(f"{warden.url}/api/deployments/{name}", timeout=10).status_code == 404
    assert httpx.get(f"{warden.url}/api/model-aliases/openai/{model}", timeout=10).status_code == 404
    assert not page.errors  # type: ignore[attr-defined]


def test_a_wrong_deployment_is_refused_with_the_apis_reason(upstream, warden, browser):
    page = browser.page(warden.url)
    page.goto("/profiles")
    page.click("#new-deployment")
    page.fill("#d-name", f"bad-{uuid.uuid4().hex[:8]}")
    page.fill("#d-provider", "no-such-provider")
    page.fill("#d-base-url", upstream.base_url)
    page.click("#deployment-save")
    expect(page.locator("#deployment-error")).to_contain_text("not a configured provider")
    page.fill("#d-provider", "openai")
    page.fill("#d-base-url", "ftp://nowhere")
    page.click("#deployment-save")
    expect(page.locator("#deployment-error")).to_contain_text("base_url")
    expect(page.locator("#deployment-editor")).to_be_visible()


def test_the_configuration_files_table_is_listed_without_its_credentials():
    token = "gAAAAAB-file-fernet-token"
    api = UpstreamsApi(
        None,
        None,
        None,
        lambda: ["openai"],
        {"east": DeploymentSpec(provider="openai", base_url="http://east.example/v1", credential=token)},
        {"openai/gpt-x": ModelAliasSpec.model_validate({"targets": [{"deployment": "east"}]})},
    )
    with TestClient(Starlette(routes=api.routes())) as client:
        answer = client.get("/api/routing/file")
    assert answer.status_code == 200 and token not in answer.text
    body = answer.json()
    assert [(d["name"], d["credential"]) for d in body["deployments"]] == [("east", {"set": True})]
    assert [(a["provider"], a["name"], a["targets"][0]["deployment"]) for a in body["model_aliases"]] == [
        ("openai", "gpt-x", "east")
    ]
    # The API still lists only what it stores.
    with TestClient(Starlette(routes=api.routes())) as client:
        assert client.get("/api/deployments").json() == {"items": []}
