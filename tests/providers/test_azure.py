"""The Azure OpenAI adapter on its own: the deployment is the model, Azure's envelope for Warden's errors, Azure's
annotated answers read like OpenAI's, and the answer's model is what it is priced as."""

from __future__ import annotations

import json

import orjson
import pytest

from providers.azure import AzureAdapter, deployment_of
from providers.openai_chat import HeldChatStream
from tests.fakes.azure_api import PROMPT_FILTER_RESULTS

ADAPTER = AzureAdapter()
CHAT = "/openai/deployments/chat-prod/chat/completions"
SAFE = {"hate": {"filtered": False, "severity": "safe"}}


def sse(payload: dict) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


PREAMBLE = sse({"choices": [], "created": 0, "id": "", "model": "", "object": "", "prompt_filter_results": []})


def chunk(delta: dict, finish: str | None = None, **extra) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish, "content_filter_results": SAFE}
    return sse(
        {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o-2024-08-06", "choices": [choice], **extra}
    )


@pytest.mark.parametrize(
    ("route", "body", "model"),
    [
        (CHAT, {"messages": []}, "chat-prod"),
        (CHAT, {"model": "something-else", "messages": []}, "chat-prod"),  # the path decides where it goes
        ("/openai/deployments/my%20dep/embeddings", {"input": "x"}, "my dep"),
        ("/openai/v1/chat/completions", {"model": "mini", "messages": []}, "mini"),
        ("/openai/responses", {"model": "chat-prod", "input": "hi"}, "chat-prod"),
    ],
)
def test_the_deployment_is_the_model(route, body, model):
    assert ADAPTER.request_meta(route, body, "api-version=2024-10-21").model == model


def test_a_route_without_a_deployment_names_none():
    assert deployment_of("/openai/v1/responses") is None and deployment_of("/openai/deployments/") is None


@pytest.mark.parametrize(
    ("status", "code"), [(401, "401"), (429, "429"), (413, "413"), (400, "some_kind"), (502, "some_kind")]
)
def test_wardens_own_errors_are_in_azures_envelope(status, code):
    body = json.loads(ADAPTER.error_body(status, "no", "some_kind"))
    assert body == {"error": {"code": code, "message": "no", "param": None, "type": "some_kind"}}


def test_an_annotated_answer_reads_like_openais_and_is_priced_as_its_model():
    body = {
        "id": "c1",
        "object": "chat.completion",
        "model": "gpt-4o-2024-08-06",
        "prompt_filter_results": PROMPT_FILTER_RESULTS,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hi"},
                "finish_reason": "stop",
                "content_filter_results": SAFE,
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    view = ADAPTER.completion_view(CHAT, body)
    assert (view.text, view.finish_reason, view.usage.input_tokens, view.model) == ("hi", "stop", 3, body["model"])
    assert ADAPTER.priced_model("chat-prod", view) == "gpt-4o-2024-08-06"


def test_a_stream_opening_with_the_prompt_filter_chunk_is_read_whole():
    stream = PREAMBLE + chunk({"role": "assistant", "content": ""}) + chunk({"content": "hello"}) + chunk({}, "stop")
    view = ADAPTER.stream_view(CHAT, stream + b"data: [DONE]\n\n")
    assert (view.text, view.finish_reason, view.model) == ("hello", "stop", "gpt-4o-2024-08-06")


def test_a_content_filter_error_is_read_as_an_error_and_priced_as_the_deployment():
    body = {"error": {"code": "content_filter", "message": "filtered", "param": "prompt", "innererror": {}}}
    view = ADAPTER.completion_view(CHAT, body)
    assert view.error == "filtered" and ADAPTER.priced_model("chat-prod", view) == "chat-prod"


def test_a_held_stream_passes_the_prompt_filter_chunk_and_holds_the_tool_call():
    held = ADAPTER.held_stream(CHAT, "text/event-stream")
    assert isinstance(held, HeldChatStream)
    assert held.feed(PREAMBLE) == PREAMBLE
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "read_file", "arguments": "{}"}}
    assert held.feed(chunk({"tool_calls": [call]})) == b""
