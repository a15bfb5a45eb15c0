"""The detail page reads whatever provider a record names through that provider's adapter: one registered at run
time (here, a wire format made up for the test) is rendered with no change to the console, and bodies no adapter
can read are shown as recorded, marked, never as an error page."""

from __future__ import annotations

import html
import json
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from providers import registry
from providers.base import ProviderAdapter, RequestMeta
from providers.held_stream import HeldStream
from providers.sse import json_events
from schemas.view import CompletionView, ConversationView, Message, Part, ToolCall
from tests.support.detail_page import TRUNCATED, section

TOY = "toyllm"
ROUTES = {"openai": "/chat/completions", "anthropic": "/v1/messages", "gemini": "/v1beta/models/g:generateContent"}


class ToyAdapter(ProviderAdapter):
    """A wire format no built-in adapter knows: ``{"prompt", "picture", "history": [{"who", "said"}]}`` asked,
    ``{"reply", "call"}`` or ``{"fail"}`` answered, ``data: {"piece"}`` events streamed."""

    name = TOY
    default_base_url = "http://toy.invalid"

    def request_meta(self, route: str, body: Any, query: str) -> RequestMeta:
        return RequestMeta(model=str(body.get("model", "")) if isinstance(body, dict) else "", stream=False)

    def error_body(self, status: int, message: str, kind: str) -> bytes:
        return orjson.dumps({"fail": message})

    def stream_error_event(self, message: str, **_: Any) -> bytes:
        return b"data: " + self.error_body(502, message, "") + b"\n\n"

    def request_view(self, route: str, body: Any) -> ConversationView:
        if body.get("prompt") == "boom":
            raise RuntimeError("an adapter meeting what it does not expect")
        messages = [
            Message(role="assistant" if turn["who"] == "bot" else "user", text=turn["said"], index=index)
            for index, turn in enumerate(body.get("history", []))
        ]
        parts = [Part(kind="text", text=body["prompt"]), Part(kind="media", media="image")] if "picture" in body else []
        messages.append(Message(role="user", text=body["prompt"], index=len(messages), parts=parts))
        return ConversationView(provider=TOY, wire_format="Toy chat", model=body.get("model"), messages=messages)

    def completion_view(self, route: str, body: Any) -> CompletionView:
        calls = [ToolCall(id="toy-call", name=body["call"], arguments={"n": 1})] if "call" in body else []
        return CompletionView(text=body.get("reply", ""), tool_calls=calls, error=body.get("fail"))

    def stream_view(self, route: str, stream: bytes) -> CompletionView:
        return CompletionView(text="".join(event.get("piece", "") for event in json_events(stream)))

    def replace_tool_results(self, route: str, body: Any, replacements: Mapping[str, str]) -> None:
        return None

    def refusal_body(self, route: str, body: Any, text: str) -> bytes:
        return orjson.dumps({"reply": text})

    def held_stream(self, route: str, content_type: str) -> HeldStream:
        raise NotImplementedError("the toy format is only read here, never proxied")


@pytest.fixture
def toy() -> Iterator[None]:
    registry.register(ToyAdapter())
    yield
    registry.unregister(TOY)


def insert(warden, provider: str, request: Any, response: Any, *, stream: bool = False, status: int = 200) -> str:
    """One interaction row as the logger writes it; returns its id."""
    interaction_id = str(uuid.uuid4())
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    as_text = lambda body: body if body is None or isinstance(body, str) else json.dumps(body)  # noqa: E731
    row = {
        "interaction_id": interaction_id,
        "started_at": now,
        "agent_id": "viewer-any-provider",
        "user_id": "",
        "session_id": "",
        "profile_id": "default",
        "provider": provider,
        "model": "m",
        "route": ROUTES.get(provider, "/chat"),
        "stream": int(stream),
        "request_received": as_text(request),
        "request_sent": None,
        "status": status,
        "finished_at": now,
        "latency_ms": 1.0,
        "response_body": as_text(response),
        "blocked": 0,
        "aborted": 0,
    }
    warden.call(lambda embedded: embedded.store.insert("warden.interactions", [row]))
    return interaction_id


def page_of(warden, interaction_id: str) -> str:
    response = httpx.get(f"{warden.url}/logs/{interaction_id}", timeout=10)
    assert response.status_code == 200
    return response.text


TOY_REQUEST = {"model": "toy-1", "history": [{"who": "bot", "said": "earlier words"}], "prompt": "hello toy"}


def test_a_provider_registered_at_run_time_is_rendered_with_no_console_change(warden, toy):
    asked = insert(warden, TOY, {**TOY_REQUEST, "picture": "cat.png"}, {"reply": "hi from toy", "call": "dig"})
    page = page_of(warden, asked)
    conversation, answer = section(page, "conversation"), section(page, "answer")
    assert "Toy chat" in conversation
    assert conversation.index("earlier words") < conversation.index("hello toy") < conversation.index("[image]")
    assert "hi from toy" in answer and "dig" in answer and '"n": 1' in answer

    streamed = insert(warden, TOY, TOY_REQUEST, 'data: {"piece": "hi "}\n\ndata: {"piece": "there"}\n\n', stream=True)
    assert "hi there" in section(page_of(warden, streamed), "answer")
    failed = insert(warden, TOY, TOY_REQUEST, {"fail": "the toy broke"}, status=500)
    assert "the toy broke" in section(page_of(warden, failed), "answer")


def test_without_its_adapter_the_same_record_is_shown_raw(warden):
    """The counterpart of the test above: what rendered it was the registered adapter, not the console."""
    interaction_id = insert(warden, TOY, TOY_REQUEST, {"reply": "hi from toy"})
    page = page_of(warden, interaction_id)
    assert "Toy chat" not in page
    assert f"Not a conversation the {TOY} adapter can read" in html.unescape(page)
    assert '<details id="raw-received" open>' in page
    assert "hello toy" in section(page, "raw")


CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "a question long enough to be cut"}]}
ANSWER = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "an answer long enough to be cut"}}]}


@pytest.mark.parametrize(
    ("provider", "request_body", "response_body", "shown"),
    [
        ("openai", json.dumps(CHAT)[:60] + TRUNCATED, json.dumps(ANSWER)[:60] + TRUNCATED, "gpt-4o"),
        ("anthropic", "{not json", "<html>502 Bad Gateway</html>", "{not json"),
        ("gemini", "[1, 2, 3]", '"just a string"', "just a string"),
        (TOY, {"prompt": "boom"}, {"unexpected": True}, '"boom"'),
    ],
    ids=["cut-by-the-record-limit", "not-json", "not-an-object", "adapter-raises"],
)
def test_a_body_no_adapter_can_read_is_shown_as_recorded(warden, toy, provider, request_body, response_body, shown):
    interaction_id = insert(warden, provider, request_body, response_body)
    page = page_of(warden, interaction_id)
    assert f"Not a conversation the {provider} adapter can read" in html.unescape(page)
    assert f"No answer the {provider} adapter can read" in html.unescape(page)
    assert '<details id="raw-received" open>' in page and '<details id="raw-response" open>' in page
    raw = section(page, "raw")
    assert shown in raw
    if provider == "openai":  # the recorder's note on a cut body is part of what is shown
        assert raw.count("truncated by warden: 900000 bytes in all") == 2


def test_lone_surrogate_escapes_are_shown_as_escapes(warden):
    """Clients read ``\\ud800`` as a lone surrogate, which no page can encode: it is shown as the escape it was."""
    body = '{"model": "gpt-4o", "messages": [{"role": "user", "content": "odd \\ud800 text"}]}'
    answer = '{"choices": [{"index": 0, "message": {"role": "assistant", "content": "back \\udfff"}}]}'
    page = page_of(warden, insert(warden, "openai", body, answer))
    assert "odd \\ud800 text" in section(page, "conversation")
    assert "back \\udfff" in section(page, "answer")
