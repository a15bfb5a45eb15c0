"""Budgets and rate limits under test: profiles that carry them, and one call per wire format through its official SDK
that says whether Warden admitted it or refused it (with the SDK's own view of the refusal)."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anthropic
import httpx
import openai
from google import genai
from google.genai import errors as genai_errors

from tests.conftest import API_KEY, CUSTOM_PROVIDER
from tests.support.agents import attribution

TIMEOUT = (60.0, 120.0, 120.0, 120.0)
"""(connect, read, write, pool) seconds: a loaded machine may be slow to accept a connection, past the SDKs' 5 s."""
WIRES = ("openai_chat", "openai_responses", "anthropic", "gemini", "custom")
MODELS = {
    "openai_chat": "gpt-4o",
    "openai_responses": "gpt-4o",
    "anthropic": "claude-sonnet-4-5",
    "gemini": "gemini-2.5-flash",
    "custom": "llama-3.1-8b",
}


def limited_profile(base_url: str, **spec: Any) -> str:
    """A fresh profile (so its counters are its own) with ``spec``'s budgets and rate limits."""
    body = {"name": f"spend-{uuid.uuid4().hex[:8]}", **spec}
    response = httpx.post(f"{base_url}/api/profiles", json=body, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["id"]


@dataclass
class Outcome:
    status: int
    """200 when admitted, else the refusal's status as the SDK saw it (0: a stream that ended in an error event)."""
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None


def _prefix(base_url: str, provider: str, profile_id: str) -> str:
    return f"{base_url}/v1/{provider}/{profile_id}" if profile_id else f"{base_url}/v1/{provider}"


def call(
    wire: str,
    base_url: str,
    profile_id: str,
    agent: str,
    *,
    stream: bool = False,
    max_tokens: int = 32,
    user: str | None = None,
    api_key: str = API_KEY,
    prompt: str = "",
    max_retries: int = 0,
) -> Outcome:
    """``prompt``: by default names the agent, so the fake upstream's log tells its requests apart (Warden does not
    forward attribution headers)."""
    prompt = prompt or f"how much is this for {agent or user}"
    headers = attribution(agent, user) if agent else ({"X-Archestra-User-Id": user} if user else {})
    model = MODELS[wire]
    try:
        if wire in ("openai_chat", "openai_responses", "custom"):
            provider = CUSTOM_PROVIDER if wire == "custom" else "openai"
            sdk = openai.OpenAI(
                base_url=_prefix(base_url, provider, profile_id),
                api_key=api_key,
                default_headers=headers,
                max_retries=max_retries,
                timeout=TIMEOUT,
            )
            if wire == "openai_responses":
                answer = sdk.responses.create(model=model, input=prompt, max_output_tokens=max_tokens, stream=stream)
            else:
                answer = sdk.chat.completions.create(
                    model=model,
                    messages=[{"role": "user", "content": prompt}],
                    max_tokens=max_tokens,
                    stream=stream,
                    **({"stream_options": {"include_usage": True}} if stream else {}),
                )
            if stream:
                list(answer)
        elif wire == "anthropic":
            sdk = anthropic.Anthropic(
                base_url=_prefix(base_url, "anthropic", profile_id),
                api_key=api_key,
                default_headers=headers,
                max_retries=max_retries,
                timeout=TIMEOUT,
            )
            request = {"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": prompt}]}
            if stream:
                with sdk.messages.stream(**request) as events:
                    list(events)
            else:
                sdk.messages.create(**request)
        else:
            client = genai.Client(
                api_key=api_key,
                http_options={
                    "base_url": _prefix(base_url, "gemini", profile_id),
                    "api_version": "v1beta",
                    "headers": headers,
                },
            )
            config = {"max_output_tokens": max_tokens}
            if stream:
                list(client.models.generate_content_stream(model=model, contents=prompt, config=config))
            else:
                client.models.generate_content(model=model, contents=prompt, config=config)
    except (openai.APIStatusError, anthropic.APIStatusError) as exc:
        return Outcome(exc.status_code, exc.message, dict(exc.response.headers), exc.body)
    except (openai.APIError, anthropic.APIError) as exc:  # an error event inside a stream that had begun
        return Outcome(0, exc.message, {}, exc.body)
    except genai_errors.APIError as exc:
        response = getattr(exc, "response", None)
        found = dict(response.headers) if response is not None and hasattr(response, "headers") else {}
        return Outcome(exc.code, exc.message or "", found, exc.details)
    return Outcome(200)


def hits(fake: Any, marker: str) -> int:
    """Requests that reached the fake upstream with ``marker`` (an agent id in the default prompt) in their body."""
    return sum(1 for received in fake.received if marker.encode() in received.raw_body)


def metric_value(metrics: str, series: str) -> float:
    """One series' value in a Prometheus scrape (0 when it is not there yet)."""
    for line in metrics.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def early_in_a_minute() -> None:
    """Rate limits count per clock minute: start where a few calls cannot straddle two minutes."""
    second = datetime.now(UTC).second
    if second >= 45:
        time.sleep(61 - second)


async def concurrent_calls(base_url: str, profile: str, agent: str, clients: int, max_tokens: int = 16) -> list[int]:
    """``clients`` chat requests at once from one agent, each asking for ``max_tokens`` output tokens: their
    statuses."""
    sdk = openai.AsyncOpenAI(
        base_url=f"{base_url}/v1/openai/{profile}",
        api_key=API_KEY,
        default_headers=attribution(agent),
        max_retries=0,
        timeout=TIMEOUT,
    )

    async def one(i: int) -> int:
        try:
            await sdk.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": f"client {i} of {agent}"}], max_tokens=max_tokens
            )
        except openai.APIStatusError as exc:
            return exc.status_code
        return 200

    try:
        return await asyncio.gather(*(one(i) for i in range(clients)))
    finally:
        await sdk.close()
