"""The cost of every interaction, in every wire format, streamed and not, through the official SDKs: the stored cost is
the catalogue's price (genai-prices, the oracle here) of the tokens the provider reported, each kind at its own rate;
an OpenAI stream without usage is counted with OpenAI's tokenizer and marked estimated; configured prices win over the
catalogue; a model without a price has an unknown cost (never $0), and says why."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import anthropic
import bpe_openai
import genai_prices
import httpx
import openai
import pytest
from google import genai
from google.genai import types as genai_types

from tests.conftest import API_KEY, CONFIGURED_PRICES, CUSTOM_PROVIDER
from tests.support.agents import attribution, new_agent

STREAMED = pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])


def oracle(provider_id: str, model: str, usage: dict[str, Any]) -> float:
    """The catalogue's own total for the stored token counts."""
    priced = genai_prices.Usage(
        input_tokens=usage["input_tokens"],
        cache_read_tokens=usage["cached_tokens"] or None,
        cache_write_tokens=usage["cache_write_tokens"] or None,
        output_tokens=usage["output_tokens"],
        output_reasoning_tokens=usage["reasoning_tokens"] or None,
    )
    return float(genai_prices.calc_price(priced, model, provider_id=provider_id).total_price)


def recorded(warden, agent: str) -> dict[str, Any]:
    (item,) = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent)
    return warden.detail(item["interaction_id"])


def parts_add_up(cost: dict[str, Any]) -> None:
    parts = [cost[f"{part}_usd"] for part in ("input", "cached", "cache_write", "output", "reasoning")]
    assert sum(parts) == pytest.approx(cost["usd"], rel=1e-9)


def openai_sdk(warden, agent: str, provider: str = "openai") -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{warden.url}/v1/{provider}", api_key=API_KEY, default_headers=attribution(agent), max_retries=0
    )


# -- OpenAI chat completions -------------------------------------------------------------------------------------


@STREAMED
def test_openai_chat_cost_prices_cached_and_reasoning_tokens_at_their_rates(warden, stream):
    agent = new_agent()
    prompt = "[[cached:64]] [[reasoning:9]] what does this cost"
    sdk = openai_sdk(warden, agent)
    messages = [{"role": "user", "content": prompt}]
    if stream:
        chunks = list(
            sdk.chat.completions.create(
                model="gpt-4o", messages=messages, stream=True, stream_options={"include_usage": True}
            )
        )
        reported = chunks[-1].usage
    else:
        reported = sdk.chat.completions.create(model="gpt-4o", messages=messages).usage
    detail = recorded(warden, agent)
    usage, cost = detail["usage"], detail["cost"]
    assert usage["input_tokens"] == reported.prompt_tokens
    assert usage["cached_tokens"] == reported.prompt_tokens_details.cached_tokens == 64
    assert usage["output_tokens"] == reported.completion_tokens
    assert usage["reasoning_tokens"] == reported.completion_tokens_details.reasoning_tokens == 9
    assert cost["usd"] == pytest.approx(oracle("openai", "gpt-4o", usage), rel=1e-9)
    assert cost["usd"] > 0 and cost["estimated"] is False
    # The catalogue's gpt-4o rates: cached input at half the input rate, reasoning at the output rate.
    assert cost["cached_usd"] == pytest.approx(64 * 1.25 / 1e6)
    assert cost["reasoning_usd"] == pytest.approx(9 * 10 / 1e6)
    assert cost["note"].startswith("genai-prices") and "gpt-4o" in cost["note"]
    parts_add_up(cost)


def test_an_openai_stream_without_usage_is_counted_with_the_tokenizer_and_marked_estimated(warden):
    agent = new_agent()
    text = ""
    for chunk in openai_sdk(warden, agent).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "count these words for me please"}], stream=True
    ):
        assert chunk.usage is None  # the SDK's default: the stream reports nothing
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
    detail = recorded(warden, agent)
    usage, cost = detail["usage"], detail["cost"]
    encoding = bpe_openai.get_encoding("o200k_base")
    assert usage["output_tokens"] == len(encoding.encode(text))
    # OpenAI's counting rule: 3 tokens around each message and 3 to prime the answer.
    assert usage["input_tokens"] == 3 + 3 + len(encoding.encode("user")) + len(
        encoding.encode("count these words for me please")
    )
    assert cost["estimated"] is True
    assert cost["usd"] == pytest.approx(oracle("openai", "gpt-4o", usage), rel=1e-9)
    row = warden.interactions(agent_id=agent)["items"][0]
    assert row["cost"] == {"usd": cost["usd"], "estimated": True}


# -- OpenAI Responses ----------------------------------------------------------------------------------------------


@STREAMED
def test_openai_responses_cost(warden, stream):
    agent = new_agent()
    sdk = openai_sdk(warden, agent)
    prompt = "[[cached:32]] [[reasoning:21]] think about it"
    if stream:
        events = list(sdk.responses.create(model="o3", input=prompt, stream=True))
        reported = events[-1].response.usage
    else:
        reported = sdk.responses.create(model="o3", input=prompt).usage
    detail = recorded(warden, agent)
    usage, cost = detail["usage"], detail["cost"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (reported.input_tokens, reported.output_tokens)
    assert usage["cached_tokens"] == reported.input_tokens_details.cached_tokens == 32
    assert usage["reasoning_tokens"] == reported.output_tokens_details.reasoning_tokens == 21
    assert cost["usd"] == pytest.approx(oracle("openai", "o3", usage), rel=1e-9)
    parts_add_up(cost)


# -- Anthropic -----------------------------------------------------------------------------------------------------


@STREAMED
def test_anthropic_cost_prices_cache_reads_and_writes_apart(warden, stream):
    agent = new_agent()
    sdk = anthropic.Anthropic(
        base_url=f"{warden.url}/v1/anthropic", api_key=API_KEY, default_headers=attribution(agent), max_retries=0
    )
    request = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "[[cached:500]] [[cache_write:120]] summarise the cached document"}],
    }
    if stream:
        with sdk.messages.stream(**request) as events:
            reported = events.get_final_message().usage
    else:
        reported = sdk.messages.create(**request).usage
    detail = recorded(warden, agent)
    usage, cost = detail["usage"], detail["cost"]
    assert usage["cached_tokens"] == reported.cache_read_input_tokens == 500
    assert usage["cache_write_tokens"] == reported.cache_creation_input_tokens == 120
    assert usage["input_tokens"] == reported.input_tokens + 500 + 120
    assert usage["output_tokens"] == reported.output_tokens
    assert cost["usd"] == pytest.approx(oracle("anthropic", "claude-sonnet-4-5", usage), rel=1e-9)
    # Claude Sonnet 4.5: reads at $0.30 and 5-minute writes at $3.75 per million.
    assert cost["cached_usd"] == pytest.approx(500 * 0.3 / 1e6)
    assert cost["cache_write_usd"] == pytest.approx(120 * 3.75 / 1e6)
    parts_add_up(cost)


# -- Gemini --------------------------------------------------------------------------------------------------------


@STREAMED
def test_gemini_cost_prices_cached_content_and_thoughts(warden, stream):
    agent = new_agent()
    sdk = genai.Client(
        api_key=API_KEY,
        http_options={
            "base_url": f"{warden.url}/v1/gemini",
            "api_version": "v1beta",
            "headers": attribution(agent),
        },
    )
    prompt = "[[cached:256]] [[reasoning:30]] think, then answer"
    if stream:
        chunks = list(sdk.models.generate_content_stream(model="gemini-2.5-flash", contents=prompt))
        reported = chunks[-1].usage_metadata
    else:
        reported = sdk.models.generate_content(model="gemini-2.5-flash", contents=prompt).usage_metadata
    assert isinstance(reported, genai_types.GenerateContentResponseUsageMetadata)
    detail = recorded(warden, agent)
    usage, cost = detail["usage"], detail["cost"]
    assert usage["input_tokens"] == reported.prompt_token_count
    assert usage["cached_tokens"] == reported.cached_content_token_count == 256
    assert usage["reasoning_tokens"] == reported.thoughts_token_count == 30
    assert usage["output_tokens"] == reported.candidates_token_count + reported.thoughts_token_count
    assert cost["usd"] == pytest.approx(oracle("google", "gemini-2.5-flash", usage), rel=1e-9)
    parts_add_up(cost)


# -- configured prices, unknown models -----------------------------------------------------------------------------


@STREAMED
def test_a_custom_providers_model_is_priced_from_the_configuration(warden, stream):
    agent = new_agent()
    sdk = openai_sdk(warden, agent, CUSTOM_PROVIDER)
    messages = [{"role": "user", "content": "[[cached:10]] hello local model"}]
    if stream:
        reported = list(
            sdk.chat.completions.create(
                model="llama-3.1-8b", messages=messages, stream=True, stream_options={"include_usage": True}
            )
        )[-1].usage
    else:
        reported = sdk.chat.completions.create(model="llama-3.1-8b", messages=messages).usage
    cost = recorded(warden, agent)["cost"]
    rates = CONFIGURED_PRICES[f"{CUSTOM_PROVIDER}/llama-3.1-8b"]
    expected = (
        Decimal(reported.prompt_tokens - 10) * Decimal(str(rates["input_mtok"]))
        + 10 * Decimal(str(rates["cache_read_mtok"]))
        + Decimal(reported.completion_tokens) * Decimal(str(rates["output_mtok"]))
    ) / 1_000_000
    assert cost["usd"] == pytest.approx(float(expected), rel=1e-9)
    assert cost["note"] == "configured price"


def test_a_configured_price_wins_over_the_catalogue(warden):
    agent = new_agent()
    reported = (
        openai_sdk(warden, agent)
        .chat.completions.create(
            model="gpt-4.1-nano", messages=[{"role": "user", "content": "[[cached:20]] [[reasoning:5]] negotiated"}]
        )
        .usage
    )
    detail = recorded(warden, agent)
    usage, cost = detail["usage"], detail["cost"]
    rates = CONFIGURED_PRICES["openai/gpt-4.1-nano"]
    assert cost["input_usd"] == pytest.approx((reported.prompt_tokens - 20) * rates["input_mtok"] / 1e6)
    assert cost["cached_usd"] == pytest.approx(20 * rates["cache_read_mtok"] / 1e6)
    assert cost["output_usd"] == pytest.approx((reported.completion_tokens - 5) * rates["output_mtok"] / 1e6)
    assert cost["reasoning_usd"] == pytest.approx(5 * rates["reasoning_mtok"] / 1e6)
    assert cost["usd"] != pytest.approx(oracle("openai", "gpt-4.1-nano", usage))
    assert cost["note"] == "configured price"


@STREAMED
def test_a_model_without_a_price_has_an_unknown_cost_not_zero(warden, stream):
    agent = new_agent()
    sdk = openai_sdk(warden, agent)
    messages = [{"role": "user", "content": "hello"}]
    if stream:
        list(
            sdk.chat.completions.create(
                model="warden-unpriced-model", messages=messages, stream=True, stream_options={"include_usage": True}
            )
        )
    else:
        sdk.chat.completions.create(model="warden-unpriced-model", messages=messages)
    detail = recorded(warden, agent)
    assert detail["usage"]["input_tokens"] > 0
    assert detail["cost"]["usd"] is None
    assert "no price for model 'warden-unpriced-model'" in detail["cost"]["note"]
    assert warden.interactions(agent_id=agent)["items"][0]["cost"]["usd"] is None
    page = httpx.get(f"{warden.url}/logs/{detail['interaction_id']}", timeout=10).text
    assert re.search(r'<dd id="cost">unknown', page)
    assert "no price for model" in page
    rows = httpx.get(f"{warden.url}/logs", params={"agent_id": agent}, timeout=10).text
    assert '<td class="num cost">—' in rows and "$0<" not in rows


# -- shown and counted -----------------------------------------------------------------------------------------------


def test_the_viewer_shows_the_cost_in_the_row_and_the_detail(warden):
    agent = new_agent()
    openai_sdk(warden, agent).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "[[cached:1000]] a long cached prompt"}]
    )
    detail = recorded(warden, agent)
    shown = f"${detail['cost']['usd']:.6f}".rstrip("0")
    rows = httpx.get(f"{warden.url}/logs", params={"agent_id": agent}, timeout=10).text
    assert f'<td class="num cost">{shown}' in rows
    page = httpx.get(f"{warden.url}/logs/{detail['interaction_id']}", timeout=10).text
    assert shown in page and "cached $0.00125" in page


def test_the_cost_is_counted_in_the_metrics(warden):
    agent = new_agent()
    sdk = openai_sdk(warden, agent)
    for content in ("one", "[[cached:5]] two three", "[[reasoning:4]] four"):
        sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": content}])
    items: list[dict[str, Any]] = []
    for _ in range(200):  # the three records arrive within the wait_for timeout each
        items = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent, limit=10)
        if len(items) == 3:
            break
    assert len(items) == 3
    series = re.search(
        rf'llm_cost_usd_total\{{[^}}]*agent_id="{agent}"[^}}]*model="gpt-4o"[^}}]*\}} (\S+)'
        rf'|llm_cost_usd_total\{{[^}}]*model="gpt-4o"[^}}]*agent_id="{agent}"[^}}]*\}} (\S+)',
        warden.metrics(),
    )
    assert series is not None
    counted = float(series.group(1) or series.group(2))
    assert counted == pytest.approx(sum(item["cost"]["usd"] for item in items), rel=1e-9)
