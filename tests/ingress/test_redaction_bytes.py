"""Redaction end to end, in every wire format, streamed and not: what Warden reports as masked is masked in the bytes
the upstream receives and in the record, whatever the client's JSON encoding; masking never breaks the request; and
the recorded ``request_sent`` is exactly what the upstream received (after redaction or tool-result replacement).

Bodies are written by hand where the attack is an encoding (``\\u002d``, ``\\/``) no SDK would choose; the natural
escapes (quotes, newlines) are also sent through the official SDKs. Secrets are assembled at run time from harmless
pieces, so the source holds nothing a secret scanner would flag.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai

from services.detection.secrets import find_secrets
from tests.conftest import API_KEY, CUSTOM_PROVIDER
from tests.fakes.upstream import FakeUpstream
from tests.support.agents import attribution, new_agent
from tests.support.guardrails import make_profile
from tests.support.json_tree import shape, strings

ALNUM = "a1B2c3D4e5F6g7H8i9J0"
OPENAI_KEY = "sk-proj-" + ALNUM * 3
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "0123456789"
BEARER = "abcDEF1234567890xyzXYZ0"
PEM_BODY = "MIIEowIBAAKCAQEA7" + "Zx9Kq2Lm8Np4Rs6Tu0Vw" * 3
SECRETS = (OPENAI_KEY, AWS_SECRET, BEARER, PEM_BODY)

# Raw JSON string contents (already escaped): each hides a secret from a scan of the raw bytes.
ESCAPED_KEY = "my key is " + OPENAI_KEY.replace("-", "\\u002d") + ", keep it safe"
ESCAPED_AWS = 'config: aws_secret_access_key = \\"' + AWS_SECRET.replace("/", "\\/") + '\\"'
BEARER_NEWLINE = "curl -H 'Authorization: Bearer\\n" + BEARER + "'"
BEGIN_ONLY = "what does -----BEGIN RSA PRIVATE KEY----- mean in a file? Asking for a friend"
BEGIN = "here is the start: -----BEGIN RSA PRIVATE KEY-----\\n" + PEM_BODY
MIDDLE = "and this message sits in between"
END = "-----END RSA PRIVATE KEY----- was the end of it"


@dataclass(frozen=True)
class WireFormat:
    name: str
    fake: str
    path: Callable[[bool], str]
    """The path after ``/v1/``, streamed or not."""
    body: Callable[[list[str], bool], str]
    """A raw JSON body carrying these raw (escaped) texts as its turns."""
    headers: dict[str, str]


def _turns(texts: list[str], make: Callable[[str, str], str]) -> str:
    roles = ["user", "assistant"]
    return ", ".join(make(roles[k % 2], text) for k, text in enumerate(texts))


def _chat(texts: list[str], stream: bool) -> str:
    messages = _turns(texts, lambda role, text: f'{{"role": "{role}", "content": "{text}"}}')
    return f'{{"model": "gpt-4o", "stream": {json.dumps(stream)}, "messages": [{messages}]}}'


def _responses(texts: list[str], stream: bool) -> str:
    items = _turns(texts, lambda role, text: f'{{"role": "{role}", "content": "{text}"}}')
    return f'{{"model": "gpt-4o", "stream": {json.dumps(stream)}, "input": [{items}]}}'


def _anthropic(texts: list[str], stream: bool) -> str:
    messages = _turns(
        texts, lambda role, text: f'{{"role": "{role}", "content": [{{"type": "text", "text": "{text}"}}]}}'
    )
    return (
        f'{{"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": {json.dumps(stream)}, "messages": [{messages}]}}'
    )


def _gemini(texts: list[str], stream: bool) -> str:
    contents = _turns(
        texts,
        lambda role, text: (
            f'{{"role": "{"model" if role == "assistant" else "user"}", "parts": [{{"text": "{text}"}}]}}'
        ),
    )
    return f'{{"contents": [{contents}]}}'


def _gemini_path(stream: bool) -> str:
    return "gemini/{profile}/v1beta/models/gemini-2.0-flash:" + (
        "streamGenerateContent?alt=sse" if stream else "generateContent"
    )


OPENAI_HEADERS = {"Authorization": f"Bearer {API_KEY}"}
FORMATS = [
    WireFormat("openai_chat", "openai", lambda s: "openai/{profile}/chat/completions", _chat, OPENAI_HEADERS),
    WireFormat("openai_responses", "openai", lambda s: "openai/{profile}/responses", _responses, OPENAI_HEADERS),
    WireFormat(
        "anthropic",
        "anthropic",
        lambda s: "anthropic/{profile}/v1/messages",
        _anthropic,
        {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"},
    ),
    WireFormat("gemini", "gemini", _gemini_path, _gemini, {"x-goog-api-key": API_KEY}),
    WireFormat(
        "custom", "compatible", lambda s: CUSTOM_PROVIDER + "/{profile}/chat/completions", _chat, OPENAI_HEADERS
    ),
    WireFormat(
        "azure_chat",
        "azure",
        lambda s: "azure/{profile}/openai/deployments/chat-prod/chat/completions?api-version=2024-10-21",
        _chat,
        {"api-key": API_KEY},
    ),
]


@pytest.fixture(scope="module")
def redacting(warden) -> str:
    return make_profile(warden, "restrictive", name="redacting", redact_secrets=True)


@pytest.fixture
def fakes(fake_openai, fake_anthropic, fake_gemini, fake_compatible, fake_azure) -> dict[str, FakeUpstream]:
    return {
        "openai": fake_openai,
        "anthropic": fake_anthropic,
        "gemini": fake_gemini,
        "compatible": fake_compatible,
        "azure": fake_azure,
    }


def _send(warden, wire: WireFormat, profile: str, texts: list[str], stream: bool) -> tuple[str, bytes, str]:
    agent = new_agent()
    raw = wire.body(texts, stream).encode()
    url = f"{warden.url}/v1/" + wire.path(stream).format(profile=profile)
    response = httpx.post(url, content=raw, headers={**wire.headers, **attribution(agent)}, timeout=30)
    assert response.status_code == 200, response.text
    return response.headers["x-warden-interaction-id"], raw, agent


def _recorded(warden, agent_id: str, interaction_id: str) -> dict[str, Any]:
    warden.wait_for(lambda i: i["interaction_id"] == interaction_id and i["status"] is not None, agent_id=agent_id)
    return warden.detail(interaction_id)


def _no_secret_left(text: str) -> None:
    decoded = strings(json.loads(text))
    for secret in SECRETS:
        assert not any(secret in s for s in decoded), secret
        assert secret not in text
    assert [s for s in decoded if find_secrets(s)] == []


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("wire", FORMATS, ids=[w.name for w in FORMATS])
def test_secrets_hidden_by_json_escapes_are_masked_in_the_bytes_sent_and_recorded(
    warden, fakes, redacting, wire, stream
):
    interaction_id, raw, agent = _send(warden, wire, redacting, [ESCAPED_KEY, ESCAPED_AWS, BEARER_NEWLINE], stream)
    upstream = fakes[wire.fake].last.raw_body
    _no_secret_left(upstream.decode())
    assert shape(json.loads(upstream)) == shape(json.loads(raw))
    sent = [s for s in strings(json.loads(upstream)) if "REDACTED" in s]
    assert sent == [
        "my key is [REDACTED:openai_api_key], keep it safe",
        'config: aws_secret_access_key = "[REDACTED:aws_secret_access_key]"',
        "curl -H 'Authorization: Bearer\n[REDACTED:bearer_token]'",
    ]

    detail = _recorded(warden, agent, interaction_id)
    assert detail["request_sent"] == upstream.decode()  # the record is what left, byte for byte
    _no_secret_left(detail["request_received"])
    reasons = sorted(d["reason"] for d in detail["request_decisions"] if d["kind"] == "redaction")
    assert reasons == ["masked 1 aws_secret_access_key", "masked 1 bearer_token", "masked 1 openai_api_key"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("wire", FORMATS, ids=[w.name for w in FORMATS])
def test_a_private_key_header_never_breaks_or_merges_the_messages(warden, fakes, redacting, wire, stream):
    texts = [BEGIN_ONLY, MIDDLE, BEGIN, MIDDLE, END]
    interaction_id, raw, agent = _send(warden, wire, redacting, texts, stream)
    upstream = fakes[wire.fake].last.raw_body
    forwarded = json.loads(upstream)  # valid JSON, of the same shape: no message swallowed or merged
    assert shape(forwarded) == shape(json.loads(raw))
    _no_secret_left(upstream.decode())
    turns = [s for s in strings(forwarded) if s not in ("user", "assistant", "model", "text", "gpt-4o")]
    turns = [s for s in turns if not s.startswith("claude")]
    assert turns == [
        "what does [REDACTED:private_key] mean in a file? Asking for a friend",
        MIDDLE,
        "here is the start: [REDACTED:private_key]",
        MIDDLE,
        END,
    ]
    detail = _recorded(warden, agent, interaction_id)
    assert detail["request_sent"] == upstream.decode()


def _vault_history(wire: WireFormat, secret_text: str) -> dict[str, Any]:
    """A history whose ``vault`` tool result the profile blocks, and a user turn with a secret."""
    output = "the launch codes are 0000"
    if wire.name in ("openai_chat", "custom", "azure_chat"):
        return {
            "model": "gpt-4o",
            "messages": [
                {"role": "user", "content": "open the vault"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "call_v", "type": "function", "function": {"name": "vault", "arguments": "{}"}}
                    ],
                },
                {"role": "tool", "tool_call_id": "call_v", "content": output},
                {"role": "user", "content": secret_text},
            ],
        }
    if wire.name == "openai_responses":
        return {
            "model": "gpt-4o",
            "input": [
                {"role": "user", "content": "open the vault"},
                {"type": "function_call", "call_id": "call_v", "name": "vault", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_v", "output": output},
                {"role": "user", "content": secret_text},
            ],
        }
    if wire.name == "anthropic":
        return {
            "model": "claude-sonnet-4-5",
            "max_tokens": 64,
            "messages": [
                {"role": "user", "content": "open the vault"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_v", "name": "vault", "input": {}}]},
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_v", "content": output},
                        {"type": "text", "text": secret_text},
                    ],
                },
            ],
        }
    return {
        "contents": [
            {"role": "user", "parts": [{"text": "open the vault"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "vault", "args": {}}}]},
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "vault", "response": {"output": output}}},
                    {"text": secret_text},
                ],
            },
        ]
    }


@pytest.mark.parametrize("redact", [False, True], ids=["replaced", "replaced_and_redacted"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("wire", FORMATS, ids=[w.name for w in FORMATS])
def test_the_recorded_request_sent_is_what_the_upstream_received(warden, fakes, wire, stream, redact):
    profile = make_profile(warden, "restrictive", name=f"sent-{redact}", redact_secrets=redact)
    body = _vault_history(wire, f"and my key is {OPENAI_KEY}")
    if wire.name != "gemini":
        body["stream"] = stream
    agent = new_agent()
    url = f"{warden.url}/v1/" + wire.path(stream).format(profile=profile)
    response = httpx.post(url, json=body, headers={**wire.headers, **attribution(agent)}, timeout=30)
    assert response.status_code == 200, response.text
    upstream = fakes[wire.fake].last.raw_body.decode()
    assert "launch codes" not in upstream and "[Content blocked by policy: vault output stays inside]" in upstream
    assert (OPENAI_KEY in upstream) is not redact
    detail = _recorded(warden, agent, response.headers["x-warden-interaction-id"])
    assert detail["request_sent"] == upstream
    assert "launch codes" in detail["request_received"]  # as received: the replacement is on the way out only
    assert (OPENAI_KEY in detail["request_received"]) is not redact


# --- the official SDKs: the escapes they write themselves (quotes, newlines) ----------------------------------------

LABELLED = f'aws_secret_access_key = "{AWS_SECRET}"\nAuthorization: Bearer\n{BEARER}'


def _check_sdk_request(warden, fake: FakeUpstream, agent: str) -> None:
    upstream = fake.last.raw_body.decode()
    _no_secret_left(upstream)
    assert "[REDACTED:aws_secret_access_key]" in upstream and "[REDACTED:bearer_token]" in upstream
    (item,) = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent)
    detail = warden.detail(item["interaction_id"])
    assert detail["request_sent"] == upstream
    _no_secret_left(detail["request_received"])


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_openai_sdk_labelled_secrets(warden, fake_openai, redacting, stream):
    agent = new_agent()
    api = openai.OpenAI(
        base_url=f"{warden.url}/v1/openai/{redacting}", api_key=API_KEY, default_headers=attribution(agent)
    )
    answer = api.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": LABELLED}], stream=stream
    )
    if stream:
        list(answer)
    _check_sdk_request(warden, fake_openai, agent)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_anthropic_sdk_labelled_secrets(warden, fake_anthropic, redacting, stream):
    agent = new_agent()
    api = anthropic.Anthropic(
        base_url=f"{warden.url}/v1/anthropic/{redacting}", api_key=API_KEY, default_headers=attribution(agent)
    )
    messages = [{"role": "user", "content": LABELLED}]
    if stream:
        with api.messages.stream(model="claude-sonnet-4-5", max_tokens=64, messages=messages) as events:
            events.get_final_message()
    else:
        api.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=messages)
    _check_sdk_request(warden, fake_anthropic, agent)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_gemini_sdk_labelled_secrets(warden, fake_gemini, redacting, stream):
    agent = new_agent()
    options = {
        "base_url": f"{warden.url}/v1/gemini/{redacting}",
        "api_version": "v1beta",
        "headers": attribution(agent),
    }
    api = genai.Client(api_key=API_KEY, http_options=options)
    if stream:
        list(api.models.generate_content_stream(model="gemini-2.0-flash", contents=LABELLED))
    else:
        api.models.generate_content(model="gemini-2.0-flash", contents=LABELLED)
    _check_sdk_request(warden, fake_gemini, agent)


@pytest.mark.parametrize("wire", FORMATS, ids=[w.name for w in FORMATS])
def test_a_refused_body_is_recorded_masked(warden, redacting, wire):
    agent = new_agent()
    raw = wire.body([f"my key is {OPENAI_KEY}"], False).encode()[:-1]  # cut short: not JSON, refused with 400
    url = f"{warden.url}/v1/" + wire.path(False).format(profile=redacting)
    response = httpx.post(url, content=raw, headers={**wire.headers, **attribution(agent)}, timeout=30)
    assert response.status_code == 400
    detail = _recorded(warden, agent, response.headers["x-warden-interaction-id"])
    assert OPENAI_KEY not in json.dumps(detail) and "[REDACTED:openai_api_key]" in detail["request_received"]
