"""Bedrock's model ids may hold an encoded ``/`` (ARNs): the path is forwarded as sent, and each piece an encoded slash
separates is still judged, so no ``..`` climbs above the base path whoever decodes it."""

from __future__ import annotations

import httpx
import pytest

from services.ingress.paths import unsafe_path

ARN = "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-v1%3A0"


def test_an_encoded_slash_passes_only_where_the_provider_reads_it_inside_a_segment():
    path = f"/v1/bedrock/model/{ARN}/converse".encode()
    assert unsafe_path(path, encoded_slash=True) is None
    assert "encoded slash" in (unsafe_path(path) or "")


@pytest.mark.parametrize("piece", ["..%2F..%2Fadmin", "x%2F..", "%2E%2E%2Fx", "x%2F%252e%252e", "x%5C.."])
def test_dot_pieces_and_backslashes_are_refused_even_inside_a_segment(piece):
    assert unsafe_path(f"/v1/bedrock/model/{piece}/converse".encode(), encoded_slash=True) is not None


def test_a_climbing_model_id_is_a_validation_exception_that_goes_nowhere(warden, upstream, bedrock_profile, key_of):
    key = key_of(bedrock_profile)
    response = httpx.post(
        f"{warden.url}/v1/bedrock/model/x%2F..%2F..%2Fadmin/converse",
        json={"messages": []},
        headers={"Authorization": f"Bearer {key.secret}"},
    )
    assert response.status_code == 400
    assert response.headers["x-amzn-errortype"] == "ValidationException"
    assert "'..'" in response.json()["message"]
    assert upstream.received == []
