"""Warden keys with every official SDK: the agent holds only a Warden key, the key decides the profile and the agent,
the upstream receives the profile's stored provider key and never the Warden key, and the record carries the key's
agent and prefix. Bad keys, provider keys on a managed profile, disagreeing headers and keys used beyond what they
allow are refused in the provider's own error shape, and recorded as such."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors

from schemas.quarantine import Quarantine
from tests.conftest import API_KEY, CUSTOM_PROVIDER
from tests.support import formats
from tests.support.agents import new_agent
from tests.support.keys import PROVIDER_KEYS, create_key, create_profile, revoke, rotate

CREDENTIAL_HEADER = {"openai": "authorization", "anthropic": "x-api-key", "gemini": "x-goog-api-key"}
PROVIDER_OF = {"chat": "openai", "responses": "openai", "anthropic": "anthropic", "gemini": "gemini"}
FORMATS = tuple(PROVIDER_OF)


@pytest.fixture(scope="module")
def managed(warden) -> str:
    return create_profile(warden, auth="managed")


def openai_client(warden, secret: str, segment: str = "", **headers: str) -> openai.OpenAI:
    base = f"{warden.url}/v1/openai" + (f"/{segment}" if segment else "")
    return openai.OpenAI(base_url=base, api_key=secret, default_headers=headers or None, max_retries=0)


def anthropic_client(warden, secret: str, segment: str = "", **headers: str) -> anthropic.Anthropic:
    base = f"{warden.url}/v1/anthropic" + (f"/{segment}" if segment else "")
    return anthropic.Anthropic(base_url=base, api_key=secret, default_headers=headers or None, max_retries=0)


def gemini_client(warden, secret: str, segment: str = "", **headers: str) -> genai.Client:
    base = f"{warden.url}/v1/gemini" + (f"/{segment}" if segment else "")
    return genai.Client(api_key=secret, http_options={"base_url": base, "api_version": "v1beta", "headers": headers})


def ask(warden, fmt: str, secret: str, prompt: str, *, stream: bool = False, segment: str = "", **headers: str):
    """One question in ``fmt`` through its official SDK, holding ``secret`` where the provider key goes."""
    if fmt == "chat":
        client = openai_client(warden, secret, segment, **headers)
        return formats.chat(client, [{"role": "user", "content": prompt}], [], stream=stream)
    if fmt == "responses":
        return formats.responses(openai_client(warden, secret, segment, **headers), prompt, [], stream=stream)
    if fmt == "anthropic":
        client = anthropic_client(warden, secret, segment, **headers)
        return formats.messages(client, [{"role": "user", "content": prompt}], [], stream=stream)
    return formats.gemini(gemini_client(warden, secret, segment, **headers), prompt, (), stream=stream)


def refused(fmt: str):
    """The exception the SDK of ``fmt`` raises for a 401."""
    if fmt in ("chat", "responses"):
        return pytest.raises(openai.AuthenticationError)
    if fmt == "anthropic":
        return pytest.raises(anthropic.AuthenticationError)
    return pytest.raises(genai_errors.ClientError)


def upstream_request(fakes: dict, fmt: str, marker: str):
    found = [r for r in fakes[PROVIDER_OF[fmt]].received if marker.encode() in r.raw_body]
    assert len(found) == 1, f"{len(found)} upstream requests carry {marker}"
    return found[0]


@pytest.fixture
def fakes(fake_openai, fake_anthropic, fake_gemini) -> dict:
    return {"openai": fake_openai, "anthropic": fake_anthropic, "gemini": fake_gemini}


def record_of(warden, agent: str, predicate=lambda item: item["status"] is not None) -> dict:
    items = warden.wait_for(predicate, agent_id=agent)
    return warden.detail(items[0]["interaction_id"])


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_an_sdk_holding_a_warden_key_reaches_the_upstream_with_the_stored_key(warden, managed, fakes, fmt, stream):
    key = create_key(warden, managed, new_agent("keyed"))
    marker = f"m-{uuid.uuid4().hex}"
    answer = ask(warden, fmt, key.secret, f"hello {marker}", stream=stream)
    assert marker in answer.text  # the fake echoes the question
    received = upstream_request(fakes, fmt, marker)
    provider = PROVIDER_OF[fmt]
    sent = received.header(CREDENTIAL_HEADER[provider])
    assert sent == (f"Bearer {PROVIDER_KEYS[provider]}" if provider == "openai" else PROVIDER_KEYS[provider])
    everything = f"{received.headers} {received.query} {received.path}".encode() + received.raw_body
    assert key.secret.encode() not in everything
    assert not any(name.startswith("x-archestra-") for name in received.headers)
    record = record_of(warden, key.agent_id)
    assert record["agent_id"] == key.agent_id and record["profile_id"] == managed
    assert record["key_prefix"] == key.prefix and key.secret.startswith(key.prefix)
    assert record["auth"] == "warden_key" and record["status"] == 200


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_provider_key_on_a_managed_profile_is_refused_in_the_providers_shape(warden, managed, fakes, fmt):
    marker = f"m-{uuid.uuid4().hex}"
    agent = new_agent()
    with refused(fmt) as caught:
        ask(warden, fmt, API_KEY, f"hello {marker}", segment=managed, **{"X-Archestra-Agent-Id": agent})
    if fmt == "gemini":
        assert caught.value.code == 401 and caught.value.status == "UNAUTHENTICATED"
    elif fmt == "anthropic":
        assert caught.value.body["type"] == "error" and caught.value.body["error"]["type"] == "authentication_error"
    else:
        assert caught.value.status_code == 401 and caught.value.body["type"] == "authentication_error"
    assert "accepts only Warden keys" in str(caught.value)
    assert not any(marker.encode() in r.raw_body for f in fakes.values() for r in f.received)
    record = record_of(warden, agent)
    assert record["status"] == 401 and record["auth"] == "refused" and record["profile_id"] == managed
    assert "provider_key" in record["error"] and record["key_prefix"] == ""


def _answer(response: httpx.Response) -> tuple[int, dict]:
    return response.status_code, response.json()


def test_malformed_unknown_revoked_expired_and_rotated_keys_get_one_answer(warden, managed):
    revoked = create_key(warden, managed, new_agent())
    revoke(warden, revoked)
    expired = create_key(
        warden, managed, new_agent(), expires_at=(datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    )
    old = create_key(warden, managed, new_agent())
    rotate(warden, old, grace_seconds=0)
    unknown = "wk_" + "A" * 43
    presented = ("wk_short", unknown, revoked.secret, expired.secret, old.secret)
    probe = new_agent("probe")  # what an unknown key's attempt is recorded under: the agent it claims
    before = warden.metrics()
    answers = []
    for secret in presented:
        response = httpx.post(
            f"{warden.url}/v1/openai/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {secret}", "X-Archestra-Agent-Id": probe},
            timeout=10,
        )
        answers.append(_answer(response))
    assert all(answer == answers[0] for answer in answers), answers
    status, body = answers[0]
    assert status == 401 and body["error"]["message"] == "invalid Warden key"
    assert body["error"]["type"] == "authentication_error"
    after = warden.metrics()
    # A secret rotated out with no grace is forgotten at once: from then on it is unknown.
    for reason, more in (("malformed", 1), ("unknown", 2), ("revoked", 1), ("expired", 1)):
        assert _count(after, reason) == _count(before, reason) + more, reason
    # A known key's attempt is recorded under its agent, with its prefix; the secret itself nowhere.
    record = record_of(warden, revoked.agent_id)
    assert record["status"] == 401 and record["auth"] == "refused" and record["key_prefix"] == revoked.prefix
    assert "revoked" in record["error"] and revoked.secret not in str(record)
    # The malformed key, the unknown one and the secret rotated out; the known keys' attempts are their agents'.
    probes: list = []
    for _ in range(400):  # until all three are recorded: at most about 20 s, a bound that only ends a hung run
        probes = [item for item in warden.interactions(agent_id=probe)["items"] if item["status"] == 401]
        if len(probes) == 3:
            break
        time.sleep(0.05)
    assert len(probes) == 3
    for item in probes:
        detail = warden.detail(item["interaction_id"])
        assert detail["key_prefix"] == "" and detail["auth"] == "refused"
        assert not any(secret in str(detail) for secret in presented)


def _count(metrics: str, reason: str) -> float:
    line = f'warden_auth_failures_total{{reason="{reason}"}} '
    for row in metrics.splitlines():
        if row.startswith(line):
            return float(row[len(line) :])
    return 0.0


def test_a_rotated_key_works_with_both_secrets_during_its_grace_period_then_only_the_new(warden, managed):
    key = create_key(warden, managed, new_agent())
    assert ask(warden, "chat", key.secret, "before").text
    fresh = rotate(warden, key, grace_seconds=3600)
    assert fresh.secret != key.secret and fresh.prefix != key.prefix
    assert ask(warden, "chat", key.secret, "old during grace").text
    assert ask(warden, "chat", fresh.secret, "new").text
    listed = httpx.get(f"{warden.url}/api/keys/{key.id}", timeout=10).json()
    assert listed["prefix"] == fresh.prefix and [p["prefix"] for p in listed["previous_prefixes"]] == [key.prefix]
    newest = rotate(warden, fresh, grace_seconds=0)  # ends every earlier secret at once
    for stale in (key.secret, fresh.secret):
        with refused("chat"):
            ask(warden, "chat", stale, "stale")
    assert ask(warden, "chat", newest.secret, "newest").text


def test_revocation_and_expiry_take_effect_on_the_next_request(warden, managed):
    key = create_key(warden, managed, new_agent())
    assert ask(warden, "anthropic", key.secret, "hi").text
    revoke(warden, key)
    with refused("anthropic"):
        ask(warden, "anthropic", key.secret, "hi")
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    expiring = create_key(warden, managed, new_agent(), expires_at=soon)
    expires_at = datetime.fromisoformat(soon)
    while datetime.now(UTC) < expires_at + timedelta(milliseconds=50):
        httpx.get(f"{warden.url}/healthz", timeout=5)  # wait out the expiry without sleeping blind
    with refused("gemini") as caught:
        ask(warden, "gemini", expiring.secret, "hi")
    assert caught.value.code == 401


def test_a_quarantined_keys_agent_is_refused_whatever_header_it_sends(warden, managed, fakes):
    key = create_key(warden, managed, new_agent("quarantined"))
    now = datetime.now(UTC)
    quarantine = Quarantine(
        profile_id=managed, agent_id=key.agent_id, reason="test", created_at=now, expires_at=now + timedelta(hours=1)
    )

    async def put(embedded) -> None:
        await embedded.config.quarantines.put(quarantine.key, quarantine)

    warden.call(put)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        ask(warden, "chat", key.secret, "hi")
    assert "quarantined" in caught.value.message
    with pytest.raises(openai.PermissionDeniedError) as disguised:
        ask(warden, "chat", key.secret, "hi", **{"X-Archestra-Agent-Id": "someone-else"})
    assert "disagrees" in disguised.value.message
    with pytest.raises(anthropic.PermissionDeniedError):
        ask(warden, "anthropic", key.secret, "hi", **{"X-Archestra-Agent-Id": key.agent_id})


def test_attribution_headers_add_only_what_the_key_leaves_open(warden, managed):
    open_key = create_key(warden, managed, new_agent())
    session = f"s-{uuid.uuid4().hex[:8]}"
    headers = {"X-Archestra-User-Id": "alice", "X-Archestra-Session-Id": session}
    assert ask(warden, "chat", open_key.secret, "hi", **headers).text
    record = record_of(warden, open_key.agent_id)
    assert (record["user_id"], record["session_id"]) == ("alice", session)
    bound = create_key(warden, managed, new_agent(), user_id="bob")
    assert ask(warden, "chat", bound.secret, "hi", **{"X-Archestra-User-Id": "bob"}).text
    assert record_of(warden, bound.agent_id)["user_id"] == "bob"
    with pytest.raises(openai.PermissionDeniedError):
        ask(warden, "chat", bound.secret, "hi", **{"X-Archestra-User-Id": "mallory"})


def test_a_key_is_refused_beyond_its_profile_providers_and_models(warden, managed):
    other = create_profile(warden, auth="passthrough")
    key = create_key(warden, managed, new_agent(), providers=["openai"], models=["gpt-4o"])
    with pytest.raises(openai.PermissionDeniedError) as wrong_profile:
        ask(warden, "chat", key.secret, "hi", segment=other)
    assert "bound to profile" in wrong_profile.value.message
    assert ask(warden, "chat", key.secret, "hi", segment=managed).text  # its own profile, named, is fine
    with pytest.raises(anthropic.PermissionDeniedError):
        ask(warden, "anthropic", key.secret, "hi")
    client = openai_client(warden, key.secret)
    with pytest.raises(openai.PermissionDeniedError) as wrong_model:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert "may not use model gpt-4o-mini" in wrong_model.value.message
    record = record_of(warden, key.agent_id, lambda item: item["status"] == 403 and item["model"] == "gpt-4o-mini")
    assert record["auth"] == "refused" and record["key_prefix"] == key.prefix


def test_a_passthrough_profile_forwards_provider_keys_and_takes_warden_keys(warden, fakes):
    profile = create_profile(warden, auth="passthrough")
    marker = f"m-{uuid.uuid4().hex}"
    agent = new_agent()
    assert ask(warden, "chat", API_KEY, marker, segment=profile, **{"X-Archestra-Agent-Id": agent}).text
    assert upstream_request(fakes, "chat", marker).header("authorization") == f"Bearer {API_KEY}"
    assert record_of(warden, agent)["auth"] == "provider_key"
    key = create_key(warden, profile, new_agent())
    marker = f"m-{uuid.uuid4().hex}"
    assert ask(warden, "gemini", key.secret, marker).text
    received = upstream_request(fakes, "gemini", marker)
    assert received.header("x-goog-api-key") == PROVIDER_KEYS["gemini"] and "key" not in received.query


def test_a_key_in_the_query_string_is_replaced_upstream(warden, managed, fakes):
    key = create_key(warden, managed, new_agent())
    marker = f"m-{uuid.uuid4().hex}"
    response = httpx.post(
        f"{warden.url}/v1/gemini/v1beta/models/gemini-2.5-flash:generateContent?key={key.secret}",
        json={"contents": [{"role": "user", "parts": [{"text": marker}]}]},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    received = upstream_request(fakes, "gemini", marker)
    assert "key" not in received.query and received.header("x-goog-api-key") == PROVIDER_KEYS["gemini"]
    record = record_of(warden, key.agent_id)
    assert key.secret not in str(record) and record["key_prefix"] == key.prefix


def test_a_custom_provider_gets_its_stored_credential_or_none_and_never_the_warden_key(
    warden, managed, fake_compatible
):
    key = create_key(warden, managed, new_agent())
    client = openai.OpenAI(base_url=f"{warden.url}/v1/{CUSTOM_PROVIDER}", api_key=key.secret, max_retries=0)
    marker = f"m-{uuid.uuid4().hex}"
    # No credential stored for it: called with none (this fake wants one, and says so; a local model would answer).
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model="llama", messages=[{"role": "user", "content": marker}])
    assert "didn't provide an API key" in caught.value.message
    (received,) = [r for r in fake_compatible.received if marker.encode() in r.raw_body]
    assert received.header("authorization") is None and key.secret not in str(received.headers)
    stored = "sk-local-" + uuid.uuid4().hex
    keyed = create_profile(warden, credentials={CUSTOM_PROVIDER: stored})
    other = create_key(warden, keyed, new_agent())
    client = openai.OpenAI(base_url=f"{warden.url}/v1/{CUSTOM_PROVIDER}", api_key=other.secret, max_retries=0)
    marker = f"m-{uuid.uuid4().hex}"
    assert client.chat.completions.create(model="llama", messages=[{"role": "user", "content": marker}]).choices
    (received,) = [r for r in fake_compatible.received if marker.encode() in r.raw_body]
    assert received.header("authorization") == f"Bearer {stored}"


def test_a_key_on_a_profile_without_the_providers_credential_is_a_502(warden):
    profile = create_profile(warden, credentials={"openai": PROVIDER_KEYS["openai"]})
    key = create_key(warden, profile, new_agent())
    with pytest.raises(anthropic.InternalServerError) as caught:
        ask(warden, "anthropic", key.secret, "hi")
    assert caught.value.status_code == 502 and "holds no usable credential for provider anthropic" in str(caught.value)
