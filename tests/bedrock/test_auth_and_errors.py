"""Who Bedrock requests authenticate as, and Warden's own refusals in Bedrock's shape (``{"message": …}`` named by
``x-amzn-ErrorType``, which boto3 raises as a ``ClientError`` with that code).

A Warden key works as boto3's access key id (SigV4, over plain HTTP too) or as a Bedrock API key (``Authorization:
Bearer``; boto3 sends one only over HTTPS, so these requests are written by hand). A client's own SigV4 signature is
refused: it cannot be forwarded and Warden cannot verify it. A client's own Bedrock API key passes through unchanged
in a passthrough profile."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from botocore.exceptions import ClientError, EventStreamError

from tests.bedrock.conftest import MODEL, bedrock, streamed, user
from tests.bedrock.test_converse import recorded
from tests.conftest import BEDROCK_ACCESS_KEY_ID
from tests.fakes.bedrock_api import API_KEYS, AWS_KEYS
from tests.support.agents import attribution, new_agent
from tests.support.keys import create_key, create_profile

CLIENT_AWS_KEY = ("AKIA" + "CLIENTOWNKEY0003", "clientOwnSecretAccessKey00000000000000003")
PROFILE_KEY_ID = "AKIAPROFILEFAKE00002"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEFakeSessionToken" + "x" * 40
CONVERSE_PATH = "/v1/bedrock/model/us.anthropic.claude-sonnet-4-20250514-v1%3A0/converse"
BODY = {"messages": user("hello by hand")}


def test_a_clients_own_sigv4_signature_is_refused_and_nothing_goes_upstream(warden, upstream):
    agent = new_agent()
    client = bedrock(warden, CLIENT_AWS_KEY[0], secret=CLIENT_AWS_KEY[1], agent=agent)
    with pytest.raises(ClientError) as raised:
        client.converse(modelId=MODEL, messages=user("hello"))
    error = raised.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 401
    assert error["Error"]["Code"] == "UnrecognizedClientException"
    assert "cannot forward an AWS SigV4 signature" in error["Error"]["Message"]
    assert upstream.received == []
    detail = recorded(warden, agent)
    assert detail["auth"] == "refused" and detail["provider"] == "bedrock" and detail["status"] == 401
    assert 'warden_auth_failures_total{reason="unforwardable_credential"}' in warden.metrics()


def test_an_invalid_warden_key_is_refused_in_bedrocks_shape(warden, upstream):
    with pytest.raises(ClientError) as raised:
        bedrock(warden, "wk_" + "x" * 40).converse(modelId=MODEL, messages=user("hello"))
    assert raised.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert raised.value.response["Error"]["Message"] == "invalid Warden key"
    assert upstream.received == []


def test_an_unknown_profile_is_a_resource_not_found(warden, upstream):
    with pytest.raises(ClientError) as raised:
        bedrock(warden, CLIENT_AWS_KEY[0], profile="no-such-profile").converse(modelId=MODEL, messages=user("hi"))
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_a_body_that_is_not_json_is_a_validation_exception(warden, upstream, bedrock_profile, key_of):
    key = key_of(bedrock_profile)
    response = httpx.post(
        f"{warden.url}{CONVERSE_PATH}",
        content=b'{"messages": [',
        headers={"Authorization": f"Bearer {key.secret}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.headers["x-amzn-errortype"] == "ValidationException"
    assert set(response.json()) == {"message"} and "not valid JSON" in response.json()["message"]
    assert upstream.received == []


def test_the_upstreams_own_errors_reach_the_sdk_with_their_code(warden, upstream, bedrock_profile, key_of):
    key = key_of(bedrock_profile)
    client = bedrock(warden, key.secret)
    with pytest.raises(ClientError) as raised:
        client.converse(modelId=MODEL, messages=user("[[error:429]] too fast"))
    assert raised.value.response["Error"]["Code"] == "ThrottlingException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert recorded(warden, key.agent_id)["status"] == 429


def test_an_in_stream_exception_reaches_the_sdk_and_the_record(warden, upstream, bedrock_profile, key_of):
    key = key_of(bedrock_profile)
    with pytest.raises(EventStreamError) as raised:
        streamed(
            bedrock(warden, key.secret).converse_stream(modelId=MODEL, messages=user("[[stream_error:503]] go on"))
        )
    assert raised.value.response["Error"]["Code"] == "serviceUnavailableException"
    detail = recorded(warden, key.agent_id)
    assert detail["finish_reason"] == "error"  # the stream broke after its first deltas, with no stop reason


def test_a_warden_key_as_a_bedrock_api_key_is_signed_again_by_warden(warden, upstream, bedrock_profile, key_of):
    key = key_of(bedrock_profile)
    response = httpx.post(f"{warden.url}{CONVERSE_PATH}", json=BODY, headers={"Authorization": f"Bearer {key.secret}"})
    assert response.status_code == 200, response.text
    assert response.json()["output"]["message"]["content"] == [{"text": "echo: hello by hand"}]
    assert upstream.last.header("authorization").startswith(f"AWS4-HMAC-SHA256 Credential={BEDROCK_ACCESS_KEY_ID}/")
    assert recorded(warden, key.agent_id)["auth"] == "warden_key"


def test_a_clients_own_bedrock_api_key_passes_through_unchanged(warden, upstream):
    agent = new_agent()
    api_key = next(iter(API_KEYS))
    response = httpx.post(
        f"{warden.url}{CONVERSE_PATH}",
        json=BODY,
        headers={"Authorization": f"Bearer {api_key}", **attribution(agent)},
    )
    assert response.status_code == 200, response.text
    assert upstream.last.header("authorization") == f"Bearer {api_key}"
    assert upstream.last.header("x-amz-date") is None  # not signed by Warden
    assert recorded(warden, agent)["auth"] == "provider_key"


def test_a_profiles_stored_aws_keys_sign_its_requests(warden, upstream, caplog):
    stored = json.dumps(
        {"access_key_id": PROFILE_KEY_ID, "secret_access_key": AWS_KEYS[PROFILE_KEY_ID], "session_token": SESSION_TOKEN}
    )
    profile = create_profile(warden, auth="managed", credentials={"bedrock": stored})
    key = create_key(warden, profile, new_agent())
    caplog.set_level(logging.DEBUG)
    for stream in (False, True):
        client = bedrock(warden, key.secret)
        if stream:
            streamed(client.converse_stream(modelId=MODEL, messages=user("stored keys")))
        else:
            client.converse(modelId=MODEL, messages=user("stored keys"))
        assert upstream.last.header("authorization").startswith(f"AWS4-HMAC-SHA256 Credential={PROFILE_KEY_ID}/")
        assert upstream.last.header("x-amz-security-token") == SESSION_TOKEN
    (item, *_) = warden.wait_for(lambda i: i["status"] == 200, agent_id=key.agent_id)
    detail = json.dumps(warden.detail(item["interaction_id"]))
    # Warden's own log lines (its thread); the client's botocore logs its own request, access key id included.
    logged = "\n".join(record.getMessage() for record in caplog.records if record.threadName == "warden")
    assert "Calculating signature using v4 auth" in logged  # Warden's signer ran, and was heard, at DEBUG
    for secret in (AWS_KEYS[PROFILE_KEY_ID], SESSION_TOKEN, key.secret, AWS_KEYS[BEDROCK_ACCESS_KEY_ID]):
        assert secret not in detail and secret not in logged


def test_a_profiles_stored_bedrock_api_key_is_sent_as_a_bearer_token(warden, upstream):
    api_key = next(iter(API_KEYS))
    profile = create_profile(warden, auth="managed", credentials={"bedrock": api_key})
    key = create_key(warden, profile, new_agent())
    answer = bedrock(warden, key.secret).converse(modelId=MODEL, messages=user("api key"))
    assert answer["output"]["message"]["content"] == [{"text": "echo: api key"}]
    assert upstream.last.header("authorization") == f"Bearer {api_key}"
    assert key.secret not in json.dumps(upstream.last.headers)
