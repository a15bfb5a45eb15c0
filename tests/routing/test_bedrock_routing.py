"""A Bedrock alias over Bedrock deployments in several regions, with boto3's ``bedrock-runtime`` client: each
attempt is signed with SigV4 for its own deployment's region and credential (the fakes refuse a signature scoped to
another region), the model id in the path is the one that region serves, and a deployment that fails falls back to
the next, streamed and not, with every attempt on the record."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.bedrock.conftest import bedrock, user
from tests.bedrock.test_converse import converse
from tests.conftest import BEDROCK_ACCESS_KEY_ID
from tests.fakes.bedrock_api import API_KEYS, AWS_KEYS
from tests.fakes.wire import Fault
from tests.routing.conftest import metric, route_over
from tests.routing.test_failover import record_of
from tests.support.agents import new_agent
from tests.support.keys import create_key, create_profile

DEPLOYMENT_KEY_ID = "AKIAPROFILEFAKE00002"
DEPLOYMENT_KEYS = json.dumps({"access_key_id": DEPLOYMENT_KEY_ID, "secret_access_key": AWS_KEYS[DEPLOYMENT_KEY_ID]})
US_MODEL = "us.anthropic.claude-sonnet-4-20250514-v1:0"
EU_MODEL = "eu.anthropic.claude-sonnet-4-20250514-v1:0"


@pytest.fixture(scope="module")
def profile(warden) -> str:
    """A passthrough profile holding no Bedrock credential: a deployment without one signs with Warden's own."""
    return create_profile(warden, auth="passthrough", credentials={})


def two_regions(warden, fakes, second_credential: str | None = None):
    us, eu = fakes["bedrock"]
    us.region, eu.region = "us-east-1", "eu-central-1"
    specs = [
        {"provider": "bedrock", "region": "us-east-1", "base_url": us.base_url, "credential": DEPLOYMENT_KEYS},
        {"provider": "bedrock", "region": "eu-central-1", "base_url": eu.base_url}
        | ({"credential": second_credential} if second_credential else {}),
    ]
    return route_over(warden, "bedrock", specs, send_models=[US_MODEL, EU_MODEL])


def scope_of(received) -> str:
    """The signature's ``key-id/…/region/service`` (the fake has checked the signature itself)."""
    credential = received.header("authorization").partition("Credential=")[2].partition(",")[0]
    key_id, _, rest = credential.partition("/")
    return f"{key_id} {rest.split('/')[1]} {rest.split('/')[2]}"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("status", [500, 429])
def test_a_failing_region_falls_back_to_the_next_signed_for_its_own(warden, fakes, profile, status, stream):
    us, eu = fakes["bedrock"]
    alias = two_regions(warden, fakes)
    us.fail_next(Fault(directives=f"[[error:{status}]]"))
    key = create_key(warden, profile, new_agent())

    answer = converse(bedrock(warden, key.secret, agent=key.agent_id), stream, modelId=alias.model, messages=user("hi"))

    assert answer["output"]["message"]["content"] == [{"text": "echo: hi"}]
    action = "converse-stream" if stream else "converse"
    assert us.last.path == f"/model/us.anthropic.claude-sonnet-4-20250514-v1%3A0/{action}"
    assert eu.last.path == f"/model/eu.anthropic.claude-sonnet-4-20250514-v1%3A0/{action}"
    # Each signed for its deployment: the first with its stored keys, the second with Warden's own.
    assert scope_of(us.last) == f"{DEPLOYMENT_KEY_ID} us-east-1 bedrock"
    assert scope_of(eu.last) == f"{BEDROCK_ACCESS_KEY_ID} eu-central-1 bedrock"
    for received in (us.last, eu.last):
        assert key.secret not in str(received.headers) and "x-warden-stored-credential" not in received.headers
    record = record_of(warden, key.agent_id)
    assert record["status"] == 200 and record["provider"] == "bedrock"
    assert [(a["deployment"], a["model"], a["status"], a["answered"]) for a in record["upstream_attempts"]] == [
        (alias.deployments[0], US_MODEL, status, False),
        (alias.deployments[1], EU_MODEL, 200, True),
    ]
    outcome = "status_5xx" if status == 500 else "status_429"
    assert metric(warden, "llm_upstream_attempts_total", deployment=alias.deployments[0], outcome=outcome) == 1


def test_a_bedrock_api_key_deployment_is_sent_its_key_as_a_bearer(warden, fakes, profile):
    us, eu = fakes["bedrock"]
    (api_key,) = API_KEYS
    alias = two_regions(warden, fakes, second_credential=api_key)
    us.fail_next(Fault(directives="[[error:503]]"))
    key = create_key(warden, profile, new_agent())

    answer = converse(bedrock(warden, key.secret, agent=key.agent_id), False, modelId=alias.model, messages=user("hi"))

    assert answer["output"]["message"]["content"] == [{"text": "echo: hi"}]
    assert eu.last.header("authorization") == f"Bearer {api_key}" and "x-amz-date" not in eu.last.headers


def test_a_breaker_opens_on_a_failing_region(warden, fakes, profile):
    us, eu = fakes["bedrock"]
    alias = two_regions(warden, fakes)
    httpx.put(
        f"{warden.url}/api/deployments/{alias.deployments[0]}",
        json={
            "provider": "bedrock",
            "region": "us-east-1",
            "base_url": us.base_url,
            "credential": {"set": True},
            "breaker_failures": 1,
            "breaker_cooldown_s": 600,
        },
        timeout=10,
    ).raise_for_status()
    us.fail_always(Fault(directives="[[error:500]]"))
    key = create_key(warden, profile, new_agent())
    client = bedrock(warden, key.secret, agent=key.agent_id)

    for stream in (False, True, False):
        assert converse(client, stream, modelId=alias.model, messages=user("hi"))["stopReason"] == "end_turn"
    assert (len(us.received), len(eu.received)) == (1, 3)
    assert metric(warden, "llm_upstream_breaker_state", deployment=alias.deployments[0]) == 2


def test_bedrock_deployments_are_refused_without_a_region_or_with_keys_that_are_not_whole(warden, fakes):
    us, _ = fakes["bedrock"]
    put = lambda name, body: httpx.put(f"{warden.url}/api/deployments/{name}", json=body, timeout=10)  # noqa: E731
    answer = put("no-region", {"provider": "bedrock", "base_url": us.base_url})
    assert answer.status_code == 422 and "region" in answer.text
    answer = put("bad-region", {"provider": "bedrock", "region": "mars-1"})
    assert answer.status_code == 422 and "not an AWS region" in answer.text
    # Without a base URL: the region's own runtime endpoint.
    default = put("default-endpoint", {"provider": "bedrock", "region": "ap-northeast-1"})
    assert default.status_code in (200, 201)
    assert default.json()["base_url"] == "https://bedrock-runtime.ap-northeast-1.amazonaws.com"
    answer = put("no-url", {"provider": "azure", "api_version": "2024-10-21"})  # no default but Bedrock's
    assert answer.status_code == 422 and "base_url: required" in answer.text
    half = put("half-keys", {"provider": "bedrock", "region": "us-west-2", "credential": '{"access_key_id": "AKIA1"}'})
    assert half.status_code == 422 and "must be AWS keys" in half.text  # never sent anywhere as something else
