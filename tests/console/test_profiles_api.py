"""The profiles admin API: create, read, list, update, delete, validation, connect URLs, persistence."""

from __future__ import annotations

import httpx
import openai

from tests.conftest import API_KEY
from tests.support.serve_process import ServeProcess

SPEC = {
    "name": "support-bot",
    "mode": "restrictive",
    "redact_secrets": True,
    "tool_invocation_policies": [
        {
            "tool": "read_file",
            "action": "block_always",
            "reason": "system files are off limits",
            "conditions": [{"key": "path", "operator": "startsWith", "value": "/etc/", "ignore_case": True}],
        }
    ],
    "trusted_data_policies": [{"tool": "fetch_url", "action": "mark_as_untrusted", "conditions": []}],
}


def test_profile_lifecycle(warden):
    api = f"{warden.url}/api/profiles"
    created = httpx.post(api, json=SPEC)
    assert created.status_code == 201
    profile = created.json()
    pid = profile["id"]
    assert profile["name"] == "support-bot" and profile["mode"] == "restrictive"
    assert profile["connect_urls"]["openai"] == f"{warden.url}/v1/openai/{pid}"
    assert profile["connect_urls"]["anthropic"] == f"{warden.url}/v1/anthropic/{pid}"
    assert profile["connect_urls"]["gemini"] == f"{warden.url}/v1/gemini/{pid}"
    assert len(profile["connect_urls"]) >= 4, "custom providers have connect URLs too"

    assert httpx.get(f"{api}/{pid}").json()["tool_invocation_policies"] == SPEC["tool_invocation_policies"]
    ids = [p["id"] for p in httpx.get(api).json()["items"]]
    assert ids[0] == "default" and pid in ids

    updated = httpx.put(f"{api}/{pid}", json={**SPEC, "name": "support-bot-2", "mode": "permissive"}).json()
    assert updated["name"] == "support-bot-2" and updated["created_at"] == profile["created_at"]

    # The connect URL works at once with an SDK.
    sdk = openai.OpenAI(base_url=profile["connect_urls"]["openai"], api_key=API_KEY, max_retries=0)
    assert sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])

    assert httpx.delete(f"{api}/{pid}").status_code == 204
    assert httpx.get(f"{api}/{pid}").status_code == 404
    assert httpx.delete(f"{api}/{pid}").status_code == 404
    try:
        sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        raise AssertionError("a deleted profile must not route")
    except openai.NotFoundError:
        pass


def test_the_default_profile_always_exists_and_cannot_be_deleted(warden):
    default = httpx.get(f"{warden.url}/api/profiles/default").json()
    assert default["mode"] == "permissive"
    assert default["connect_urls"]["openai"] == f"{warden.url}/v1/openai/default"
    assert httpx.delete(f"{warden.url}/api/profiles/default").status_code == 409


def test_invalid_policies_are_a_422_naming_the_field(warden):
    cases = [
        (
            {**SPEC, "tool_invocation_policies": [{"tool": "x", "action": "explode"}]},
            "tool_invocation_policies.0.action",
        ),
        (
            {
                **SPEC,
                "trusted_data_policies": [
                    {
                        "tool": "x",
                        "action": "mark_as_trusted",
                        "conditions": [{"key": "a", "operator": "like", "value": "b"}],
                    }
                ],
            },
            "trusted_data_policies.0.conditions.0.operator",
        ),
        (
            {
                **SPEC,
                "tool_invocation_policies": [
                    {
                        "tool": "x",
                        "action": "block_always",
                        "conditions": [{"key": "a", "operator": "regex", "value": "(["}],
                    }
                ],
            },
            "tool_invocation_policies.0.conditions.0.value",
        ),
        ({**SPEC, "colour": "blue"}, "colour"),
    ]
    for body, field in cases:
        response = httpx.post(f"{warden.url}/api/profiles", json=body)
        assert response.status_code == 422, body
        assert field in response.json()["error"]["message"]
    json_type = {"Content-Type": "application/json"}
    assert httpx.post(f"{warden.url}/api/profiles", content=b"{nope", headers=json_type).status_code == 400


def test_profiles_survive_a_restart(tmp_path, fake_openai):
    env = {"WARDEN_OPENAI_BASE_URL": fake_openai.url + "/v1"}
    first = ServeProcess(tmp_path / "data", env=env).start()
    try:
        pid = httpx.post(f"{first.url}/api/profiles", json=SPEC).json()["id"]
    finally:
        first.interrupt()
    second = ServeProcess(tmp_path / "data", env=env).start()
    try:
        assert httpx.get(f"{second.url}/api/profiles/{pid}").json()["name"] == "support-bot"
        sdk = openai.OpenAI(base_url=f"{second.url}/v1/openai/{pid}", api_key=API_KEY, max_retries=0)
        assert sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    finally:
        second.interrupt()
