"""One question asked through Warden with each provider's official SDK, streamed or not: the text of the answer
and the usage the SDK reports (the SDK's own exception when it fails)."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
from google import genai

from tests.conftest import API_KEY
from tests.support.agents import attribution

FORMATS = [
    ("openai", False),
    ("openai", True),
    ("anthropic", False),
    ("anthropic", True),
    ("gemini", False),
    ("gemini", True),
]
SDK_ERRORS: dict[str, tuple[type[BaseException], ...]] = {
    "openai": (openai.APIError,),
    "anthropic": (anthropic.APIError,),
    "gemini": (genai.errors.APIError,),
}


def ask(warden: Any, provider: str, model: str, prompt: str, agent: str, stream: bool) -> tuple[str, int | None]:
    """The answer's text and its output tokens as the SDK reports them."""
    headers = attribution(agent)
    if provider == "openai":
        client = openai.OpenAI(
            base_url=f"{warden.url}/v1/openai", api_key=API_KEY, default_headers=headers, max_retries=0
        )
        messages = [{"role": "user", "content": prompt}]
        if not stream:
            answer = client.chat.completions.create(model=model, messages=messages)
            return answer.choices[0].message.content or "", answer.usage.completion_tokens
        text, tokens = "", None
        for chunk in client.chat.completions.create(
            model=model, messages=messages, stream=True, stream_options={"include_usage": True}
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
        return text, tokens
    if provider == "anthropic":
        client = anthropic.Anthropic(
            base_url=f"{warden.url}/v1/anthropic", api_key=API_KEY, default_headers=headers, max_retries=0
        )
        messages = [{"role": "user", "content": prompt}]
        if not stream:
            answer = client.messages.create(model=model, max_tokens=64, messages=messages)
            return "".join(block.text for block in answer.content if block.type == "text"), answer.usage.output_tokens
        with client.messages.stream(model=model, max_tokens=64, messages=messages) as streamed:
            text = "".join(streamed.text_stream)
            final = streamed.get_final_message()
        return text, final.usage.output_tokens
    api = genai.Client(
        api_key=API_KEY,
        http_options={"base_url": f"{warden.url}/v1/gemini", "api_version": "v1beta", "headers": headers},
    )
    if not stream:
        answer = api.models.generate_content(model=model, contents=prompt)
        return answer.text or "", answer.usage_metadata.candidates_token_count
    text, tokens = "", None
    for chunk in api.models.generate_content_stream(model=model, contents=prompt):
        text += chunk.text or ""
        if chunk.usage_metadata is not None and chunk.usage_metadata.candidates_token_count is not None:
            tokens = chunk.usage_metadata.candidates_token_count
    return text, tokens
