"""The OpenAI adapter's dispatch by route: embeddings, the models list, other routes, and OpenAI-compatible
upstreams under their own name."""

from __future__ import annotations

import pytest

from providers.openai import Api, OpenAIAdapter, api_of
from providers.registry import BUILTIN_NAMES, builtin_adapters, openai_compatible

ADAPTER = OpenAIAdapter()


@pytest.mark.parametrize(
    ("route", "api"),
    [
        ("/chat/completions", Api.CHAT),
        ("/v1/chat/completions", Api.CHAT),
        ("/responses", Api.RESPONSES),
        ("/responses/resp_123", Api.RESPONSES),
        ("/responses/resp_123/input_items", Api.RESPONSES),
        ("/embeddings", Api.EMBEDDINGS),
        ("/models", Api.OTHER),
        ("/models/gpt-4o", Api.OTHER),
        ("/completions", Api.OTHER),
    ],
)
def test_routes_are_dispatched_by_api(route, api):
    assert api_of(route) is api


def test_embeddings_inputs_are_user_messages_and_usage_is_input_only():
    body = {"model": "text-embedding-3-small", "input": ["first text", [1, 2, 3], "third"], "dimensions": 256}
    view = ADAPTER.request_view("/embeddings", body)
    assert view.model == "text-embedding-3-small"
    assert [(m.role, m.text, m.index) for m in view.messages] == [("user", "first text", 0), ("user", "third", 2)]
    answer = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.0023, -0.0093]}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 8, "total_tokens": 8},
    }
    completion = ADAPTER.completion_view("/embeddings", answer)
    assert completion.usage.model_dump() == {
        "input_tokens": 8,
        "output_tokens": 0,
        "cached_tokens": None,
        "cache_write_tokens": None,
        "reasoning_tokens": None,
        "estimated": False,
    }
    assert completion.text == "" and completion.tool_calls == []
    assert ADAPTER.request_view("/embeddings", {"model": "m", "input": "one"}).messages[0].text == "one"


def test_the_models_list_has_an_empty_view():
    assert ADAPTER.request_view("/models", None).messages == []
    listing = {"object": "list", "data": [{"id": "gpt-4o", "object": "model", "created": 1, "owned_by": "system"}]}
    completion = ADAPTER.completion_view("/models", listing)
    assert completion.text == "" and completion.usage.input_tokens is None


def test_a_custom_provider_is_the_openai_adapter_under_its_name():
    custom = openai_compatible("vllm")
    assert custom.name == "vllm" and ADAPTER.name == "openai"
    view = custom.request_view("/chat/completions", {"model": "llama", "messages": [{"role": "user", "content": "hi"}]})
    assert view.provider == "vllm" and view.messages[0].text == "hi"


def test_the_builtin_providers():
    adapters = builtin_adapters()
    assert set(adapters) == BUILTIN_NAMES == {"openai", "anthropic", "gemini", "bedrock", "azure"}
    for name, adapter in adapters.items():
        assert adapter.name == name
        # An Azure resource has an endpoint of its own: there is no default to fall back on.
        assert adapter.default_base_url.startswith("https://") or (name, adapter.default_base_url) == ("azure", "")
