"""How a request is sent to a deployment of another compatible wire format, or with a model named in its path: the
translations on their own (pure functions), and the one-format case left with nothing to do."""

from __future__ import annotations

import orjson
import pytest

from services.ingress.failover.wire import (
    Untranslatable,
    azure_to_azure,
    azure_to_openai,
    bedrock_model,
    for_target,
    openai_to_azure,
)

BODY = orjson.dumps({"model": "gpt-4o", "messages": []})


def model_of(body: bytes) -> str:
    return orjson.loads(body)["model"]


@pytest.mark.parametrize(
    ("route", "sent"),
    [
        ("/chat/completions", "/openai/deployments/prod%2Feu/chat/completions"),
        ("/completions", "/openai/deployments/prod%2Feu/completions"),
        ("/embeddings", "/openai/deployments/prod%2Feu/embeddings"),
    ],
)
def test_openai_routes_go_to_the_azure_deployments_path_with_its_api_version(route, sent):
    path, query, body = openai_to_azure(
        "2024-10-21", route, b"api-version=1999-01-01&trace=1", BODY, "gpt-4o", "prod/eu"
    )
    assert path == sent
    assert query == b"trace=1&api-version=2024-10-21"  # the client's api-version never wins over the deployment's
    assert model_of(body) == "prod/eu"


def test_openai_responses_go_to_azure_with_the_deployment_as_model():
    path, query, body = openai_to_azure("2024-10-21", "/responses", b"", BODY, "gpt-4o", "prod")
    assert (path, query, model_of(body)) == ("/openai/responses", b"api-version=2024-10-21", "prod")


@pytest.mark.parametrize("route", ["/images/generations", "/files", "/responses/resp_1", "/models/gpt-4o"])
def test_a_route_azure_has_no_counterpart_of_is_not_sent(route):
    with pytest.raises(Untranslatable):
        openai_to_azure("2024-10-21", route, b"", BODY, "gpt-4o", "prod")


@pytest.mark.parametrize(
    ("route", "sent"),
    [
        ("/openai/deployments/chat-prod/chat/completions", "/chat/completions"),
        ("/openai/deployments/embed/embeddings", "/embeddings"),
        ("/openai/responses", "/responses"),
        ("/openai/v1/chat/completions", "/chat/completions"),
        ("/openai/v1/responses", "/responses"),
    ],
)
def test_azure_routes_go_to_openai_with_the_model_in_the_body_and_no_api_version(route, sent):
    no_model = orjson.dumps({"messages": []})  # an Azure deployment path's body names no model
    path, query, body = azure_to_openai(route, b"api-version=2024-10-21", no_model, "chat-prod", "gpt-4o")
    assert (path, query, model_of(body)) == (sent, b"", "gpt-4o")


def test_an_azure_path_openai_has_no_counterpart_of_is_not_sent():
    with pytest.raises(Untranslatable):
        azure_to_openai("/openai/deployments/d/images/generations", b"", BODY, "d", "dall-e-3")


def test_azure_to_azure_renames_the_deployment_in_the_path_and_sets_its_api_version():
    path, query, _ = azure_to_azure("2025-01-01", "/openai/deployments/a/audio/speech", b"api-version=x", b"", "a", "b")
    assert (path, query) == ("/openai/deployments/b/audio/speech", b"api-version=2025-01-01")
    path, query, body = azure_to_azure(None, "/openai/v1/responses", b"", BODY, "gpt-4o", "b")
    assert (path, query, model_of(body)) == ("/openai/v1/responses", b"", "b")


def test_bedrock_model_ids_are_replaced_in_the_path_encoded_as_the_aws_sdks_encode_them():
    path, _, _ = bedrock_model("/model/claude/converse-stream", b"", b"{}", "claude", "eu.anthropic.claude-v1:0")
    assert path == "/model/eu.anthropic.claude-v1%3A0/converse-stream"
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-v1:0"
    path, _, _ = bedrock_model("/model/claude/invoke", b"", b"{}", "claude", arn)
    encoded = "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-v1%3A0"
    assert path == f"/model/{encoded}/invoke"


def test_deployments_of_the_aliass_own_format_need_no_translation():
    assert for_target("openai", "openai", "gpt-4o", "gpt-4o-2024-08-06", None) is None  # the body's model, as before
    assert for_target("anthropic", "anthropic", "m", "n", None) is None
    assert for_target("azure", "azure", "d", "d", None) is None
    assert for_target("bedrock", "bedrock", "m", "m", None) is None
    assert for_target("azure", "azure", "d", "e", None) is not None
    assert for_target("bedrock", "bedrock", "m", "n", None) is bedrock_model
