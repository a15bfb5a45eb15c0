"""One question asked through Warden in each wire format with its official SDK, and the answer as the client got it:
the tool calls it would act on and the text. For tests that must hold in every format, streamed and not."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
from google import genai
from google.genai import types

from tests.conftest import API_KEY, CUSTOM_PROVIDER
from tests.support.agents import attribution

FORMATS = ("chat", "responses", "anthropic", "gemini", "custom")
GEMINI_MODEL = "gemini-2.5-flash"
ANTHROPIC_MODEL = "claude-sonnet-4-6"
PARAMETERS = {
    "read_file": {"path": "string"},
    "send_email": {"to": "string", "body": "string"},
    "fetch_url": {"url": "string"},
    "get_time": {"zone": "string"},
}


@dataclass
class Answer:
    calls: list[tuple[str, Any]]
    """(tool name, arguments) of every tool call the client got, in every choice or candidate."""
    text: str


def _schema(name: str) -> dict[str, Any]:
    return {"type": "object", "properties": {key: {"type": kind} for key, kind in PARAMETERS[name].items()}}


def _arguments(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def openai_client(warden, provider: str, profile: str, agent: str, headers: dict[str, str] | None) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{warden.url}/v1/{provider}/{profile}",
        api_key=API_KEY,
        default_headers={**attribution(agent), **(headers or {})},
        max_retries=0,
    )


def ask(
    warden,
    fmt: str,
    profile: str,
    agent: str,
    prompt: str,
    *,
    stream: bool,
    tools: tuple[str, ...] = ("read_file",),
    headers: dict[str, str] | None = None,
) -> Answer:
    if fmt in ("chat", "custom"):
        provider = "openai" if fmt == "chat" else CUSTOM_PROVIDER
        client = openai_client(warden, provider, profile, agent, headers)
        specs = [{"type": "function", "function": {"name": name, "parameters": _schema(name)}} for name in tools]
        return chat(client, [{"role": "user", "content": prompt}], specs, stream=stream)
    if fmt == "responses":
        client = openai_client(warden, "openai", profile, agent, headers)
        specs = [{"type": "function", "name": name, "parameters": _schema(name)} for name in tools]
        return responses(client, prompt, specs, stream=stream)
    if fmt == "anthropic":
        client = anthropic.Anthropic(
            base_url=f"{warden.url}/v1/anthropic/{profile}",
            api_key=API_KEY,
            default_headers={**attribution(agent), **(headers or {})},
            max_retries=0,
        )
        specs = [{"name": name, "input_schema": _schema(name)} for name in tools]
        return messages(client, [{"role": "user", "content": prompt}], specs, stream=stream)
    if fmt == "gemini":
        client = gemini_client(warden, profile, agent, headers)
        return gemini(client, prompt, tools, stream=stream)
    raise ValueError(fmt)


def chat(client: openai.OpenAI, history: list[dict], tools: list[dict], *, stream: bool, **extra: Any) -> Answer:
    if not stream:
        answer = client.chat.completions.create(model="gpt-4o", messages=history, tools=tools, **extra)
        calls = [
            (call.function.name, _arguments(call.function.arguments))
            for choice in answer.choices
            for call in choice.message.tool_calls or []
        ]
        return Answer(calls, "".join(choice.message.content or "" for choice in answer.choices))
    pieces: dict[tuple[int, int], list[str]] = {}
    names: dict[tuple[int, int], str] = {}
    text = ""
    for chunk in client.chat.completions.create(model="gpt-4o", messages=history, tools=tools, stream=True, **extra):
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                key = (choice.index, call.index)
                pieces.setdefault(key, []).append(call.function.arguments or "")
                names[key] = (call.function.name or "") or names.get(key, "")
    return Answer([(names[key], _arguments("".join(pieces[key]))) for key in sorted(pieces)], text)


def responses(client: openai.OpenAI, prompt: Any, tools: list[dict], *, stream: bool, **extra: Any) -> Answer:
    if not stream:
        answer = client.responses.create(model="gpt-4o", input=prompt, tools=tools, **extra)
    else:
        with client.responses.stream(model="gpt-4o", input=prompt, tools=tools, **extra) as events:
            answer = events.get_final_response()
    calls = [(item.name, _arguments(item.arguments)) for item in answer.output if item.type == "function_call"]
    return Answer(calls, answer.output_text)


def messages(client: anthropic.Anthropic, history: list[dict], tools: list[dict], *, stream: bool) -> Answer:
    if not stream:
        answer = client.messages.create(model=ANTHROPIC_MODEL, max_tokens=256, messages=history, tools=tools)
    else:
        with client.messages.stream(model=ANTHROPIC_MODEL, max_tokens=256, messages=history, tools=tools) as events:
            answer = events.get_final_message()
    calls = [(block.name, block.input) for block in answer.content if block.type == "tool_use"]
    return Answer(calls, "".join(block.text for block in answer.content if block.type == "text"))


def gemini_client(warden, profile: str, agent: str, headers: dict[str, str] | None = None) -> genai.Client:
    options = {
        "base_url": f"{warden.url}/v1/gemini/{profile}",
        "api_version": "v1beta",
        "headers": {**attribution(agent), **(headers or {})},
    }
    return genai.Client(api_key=API_KEY, http_options=options)


def gemini(client: genai.Client, contents: Any, tools: tuple[str, ...], *, stream: bool, **config: Any) -> Answer:
    declarations = [
        types.FunctionDeclaration(
            name=name,
            parameters=types.Schema(
                type=types.Type.OBJECT,
                properties={key: types.Schema(type=types.Type.STRING) for key in PARAMETERS[name]},
            ),
        )
        for name in tools
    ]
    settings = types.GenerateContentConfig(tools=[types.Tool(function_declarations=declarations)], **config)
    if not stream:
        chunks = [client.models.generate_content(model=GEMINI_MODEL, contents=contents, config=settings)]
    else:
        chunks = list(client.models.generate_content_stream(model=GEMINI_MODEL, contents=contents, config=settings))
    calls, text = [], ""
    for chunk in chunks:
        for candidate in chunk.candidates or []:
            for part in (candidate.content.parts if candidate.content else None) or []:
                if part.function_call is not None:
                    calls.append((part.function_call.name, dict(part.function_call.args or {})))
                elif part.text:
                    text += part.text
    return Answer(calls, text)
