"""boto3's ``bedrock-runtime`` client pointed at the shared Warden, which forwards to the fake Bedrock upstream.

The client authenticates with a Warden key as its access key id (boto3 signs every request with SigV4; Warden reads
the key id from the signature and signs again with its own AWS credentials). Attribution headers are added the way
boto3 adds any header: an event handler run before signing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.conftest import BEDROCK_REGION
from tests.fakes.upstream import FakeUpstream
from tests.support.agents import attribution, new_agent
from tests.support.keys import Key, create_key, create_profile

MODEL = "us.anthropic.claude-sonnet-4-20250514-v1:0"
"""A cross-region inference profile id (its ``:`` is percent-encoded in the path)."""


def bedrock(
    warden, access_key_id: str, *, agent: str | None = None, profile: str | None = None, secret: str = "not-a-secret"
) -> Any:
    """A ``bedrock-runtime`` client of Warden; ``access_key_id``: a Warden key, or the client's own AWS key id."""
    endpoint = f"{warden.url}/v1/bedrock" + (f"/{profile}" if profile else "")
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=endpoint,
        region_name=BEDROCK_REGION,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1}),
    )
    if agent is not None:
        headers = attribution(agent)

        def add_attribution(request: Any, **_: Any) -> None:
            for name, value in headers.items():
                request.headers[name] = value

        client.meta.events.register("before-sign.bedrock-runtime.*", add_attribution)
    return client


@pytest.fixture(scope="session")
def bedrock_profile(warden) -> str:
    """A passthrough profile holding no Bedrock credential: Warden keys of it go upstream with Warden's own."""
    return create_profile(warden, auth="passthrough", credentials={})


@pytest.fixture
def key_of(warden) -> Callable[[str], Key]:
    """A new Warden key (with its own agent) of a profile."""
    return lambda profile: create_key(warden, profile, new_agent())


@pytest.fixture
def upstream(fake_bedrock: FakeUpstream) -> FakeUpstream:
    fake_bedrock.reset()
    return fake_bedrock


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"text": text}]}]


def streamed(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """Every event of a ConverseStream answer, as boto3 parsed them."""
    return list(answer["stream"])
