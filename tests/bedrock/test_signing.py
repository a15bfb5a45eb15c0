"""Warden's signer on its own: Warden's credentials from botocore's default chain when none are configured, none at
all is a clear refusal, and a client's credentials never survive into what Warden signs."""

from __future__ import annotations

import pytest

from services.ingress.signing import STORED_CREDENTIAL, BedrockSigner, NoAwsCredentials, read_stored

URL = "https://bedrock-runtime.eu-west-3.amazonaws.com/model/m%3A0/converse"
CLIENT_HEADERS = [
    ("Content-Type", "application/json"),
    ("Authorization", "AWS4-HMAC-SHA256 Credential=wk_client/…"),
    ("X-Amz-Date", "20200101T000000Z"),
    ("X-Amz-Security-Token", "client-token"),
]


@pytest.fixture
def no_aws_config(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


async def test_the_default_chain_signs_when_nothing_is_configured(no_aws_config, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMENVIRONMENT1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fromEnvironmentSecret")
    target, headers = await BedrockSigner("eu-west-3").sign("POST", URL, CLIENT_HEADERS, b"{}", ())
    sent = dict(headers)
    assert sent["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIAFROMENVIRONMENT1/")
    assert "/eu-west-3/bedrock/aws4_request" in sent["Authorization"]
    assert "X-Amz-Security-Token" not in sent and sent["X-Amz-Date"] != "20200101T000000Z"
    assert str(target) == URL  # the path as the client encoded it


async def test_no_credentials_anywhere_is_a_clear_refusal(no_aws_config):
    with pytest.raises(NoAwsCredentials, match="WARDEN_BEDROCK_ACCESS_KEY_ID"):
        await BedrockSigner("eu-west-3").sign("POST", URL, CLIENT_HEADERS, b"{}", ())


async def test_the_clients_own_credential_passes_untouched_when_warden_does_not_answer_for_it():
    headers = [("Authorization", "Bearer ABSKclientkey")]
    _, sent = await BedrockSigner("eu-west-3").sign("POST", URL, headers, b"{}", None)
    assert sent == headers


async def test_a_stored_api_key_is_a_bearer_and_the_carrier_header_never_leaves():
    headers = [*CLIENT_HEADERS[:1], (STORED_CREDENTIAL, "ABSKstoredkey")]
    _, sent = await BedrockSigner("eu-west-3").sign(
        "POST", URL, headers, b"{}", ((STORED_CREDENTIAL, "ABSKstoredkey"),)
    )
    assert dict(sent) == {"Content-Type": "application/json", "Authorization": "Bearer ABSKstoredkey"}


def test_stored_credentials_are_aws_keys_only_as_a_whole_json_object():
    keys = read_stored('{"access_key_id": "AKIA1", "secret_access_key": "s"}')
    assert not isinstance(keys, str) and keys.access_key_id == "AKIA1" and keys.session_token is None
    with pytest.raises(NoAwsCredentials, match="not AWS keys"):
        read_stored('{"access_key_id": "AKIA1"}')  # meant as keys, incomplete: never sent as something else
    assert read_stored("ABSKapikey") == "ABSKapikey"
