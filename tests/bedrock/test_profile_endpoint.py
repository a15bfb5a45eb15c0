"""A profile's own Bedrock endpoint (``endpoints.bedrock``) is signed like the configured one: by Warden, for the
region its host names (the configured region for any other host)."""

from __future__ import annotations

from services.ingress.signing import bedrock_region_of
from tests.bedrock.conftest import MODEL, bedrock, user
from tests.conftest import BEDROCK_ACCESS_KEY_ID, BEDROCK_REGION
from tests.fakes.upstream import FakeUpstream
from tests.support.keys import create_profile


def test_a_profiles_own_bedrock_endpoint_is_reached_signed_by_warden(warden, key_of):
    with FakeUpstream(provider="bedrock") as own:
        profile = create_profile(warden, auth="passthrough", credentials={}, endpoints={"bedrock": own.url})
        key = key_of(profile)
        answer = bedrock(warden, key.secret, agent=key.agent_id).converse(modelId=MODEL, messages=user("hello"))
        assert answer["output"]["message"]["content"] == [{"text": "echo: hello"}]
        authorization = own.last.header("authorization")  # the fake checked the signature itself
        assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential={BEDROCK_ACCESS_KEY_ID}/")
        assert f"/{BEDROCK_REGION}/bedrock/aws4_request" in authorization
        assert key.secret not in str(own.last.headers)


def test_the_region_of_an_endpoint_is_the_one_its_host_names():
    assert bedrock_region_of("https://bedrock-runtime.eu-central-1.amazonaws.com") == "eu-central-1"
    assert bedrock_region_of("https://bedrock-runtime-fips.us-gov-west-1.amazonaws.com/") == "us-gov-west-1"
    assert bedrock_region_of("https://bedrock-runtime.cn-north-1.amazonaws.com.cn") == "cn-north-1"
    assert bedrock_region_of("https://bedrock.internal.example.com") is None
    assert bedrock_region_of("http://127.0.0.1:8080") is None
