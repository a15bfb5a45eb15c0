"""The pricing logic on its own: every part at the catalogue's rate (tiers by prompt size included), configured prices
over the catalogue, unknown models and providers unknown rather than free, and a bounded memo of lookups."""

from __future__ import annotations

from datetime import UTC, datetime

import genai_prices
import pytest

from schemas.view import Usage
from services.pricing.catalogue import Catalogue, ModelPrices
from services.pricing.cost import cost_of

NOW = datetime(2026, 3, 14, tzinfo=UTC)


def oracle(provider_id: str, model: str, usage: Usage) -> float:
    priced = genai_prices.Usage(
        input_tokens=usage.input_tokens,
        cache_read_tokens=usage.cached_tokens or None,
        cache_write_tokens=usage.cache_write_tokens or None,
        output_tokens=usage.output_tokens,
        output_reasoning_tokens=usage.reasoning_tokens or None,
    )
    return float(
        genai_prices.calc_price(priced, model, provider_id=provider_id, genai_request_timestamp=NOW).total_price
    )


@pytest.mark.parametrize(
    ("provider", "catalogue_id", "model"),
    [
        ("openai", "openai", "gpt-4o"),
        ("openai", "openai", "o3"),
        ("anthropic", "anthropic", "claude-sonnet-4-5"),
        ("anthropic", "anthropic", "claude-opus-4-1"),
        ("gemini", "google", "gemini-2.5-flash"),
        ("gemini", "google", "gemini-2.5-pro"),
        ("groq", "groq", "llama-3.3-70b-versatile"),
    ],
)
@pytest.mark.parametrize("prompt", [1_000, 250_000], ids=["short", "long prompt (tiered)"])
def test_the_cost_is_the_catalogues_price_of_the_reported_tokens(provider, catalogue_id, model, prompt):
    usage = Usage(
        input_tokens=prompt,
        cached_tokens=prompt // 4,
        cache_write_tokens=prompt // 10,
        output_tokens=900,
        reasoning_tokens=300,
    )
    if catalogue_id != "anthropic":
        usage.cache_write_tokens = None  # only Anthropic reports cache writes
    cost = cost_of(Catalogue(), provider, model, usage, NOW)
    assert cost.usd == pytest.approx(oracle(catalogue_id, model, usage), rel=1e-9)
    parts = (cost.input_usd, cost.cached_usd, cost.cache_write_usd, cost.output_usd, cost.reasoning_usd)
    assert sum(parts) == pytest.approx(cost.usd, rel=1e-9)
    assert cost.note.startswith("genai-prices")


def test_a_long_prompt_is_priced_at_the_higher_tier():
    catalogue = Catalogue()
    short = cost_of(catalogue, "gemini", "gemini-2.5-pro", Usage(input_tokens=200_000, output_tokens=0), NOW)
    long = cost_of(catalogue, "gemini", "gemini-2.5-pro", Usage(input_tokens=200_001, output_tokens=0), NOW)
    assert long.usd / 200_001 > short.usd / 200_000 * 1.5


def test_configured_prices_win_and_fill_their_defaults():
    catalogue = Catalogue(
        {"openai/gpt-4o": ModelPrices(input_mtok=1, output_mtok=2), "*/house": ModelPrices(input_mtok=3, output_mtok=4)}
    )
    usage = Usage(input_tokens=1_000_000, cached_tokens=500_000, output_tokens=1_000_000, reasoning_tokens=250_000)
    cost = cost_of(catalogue, "openai", "gpt-4o", usage, NOW)
    # cache reads at the input rate and reasoning at the output rate when not configured apart
    assert (cost.input_usd, cost.cached_usd, cost.output_usd, cost.reasoning_usd) == (0.5, 0.5, 1.5, 0.5)
    assert cost.usd == 3.0 and cost.note == "configured price"
    assert cost_of(catalogue, "any-provider", "house", usage, NOW).usd == 3 * 1 + 4 * 1


@pytest.mark.parametrize(
    ("provider", "model", "says"),
    [
        ("openai", "no-such-model", "no price for model 'no-such-model' at provider 'openai'"),
        ("my-vllm", "llama-3.1-8b", "no price for model 'llama-3.1-8b' at provider 'my-vllm'"),
        ("openai", "", "the request named no model"),
    ],
)
def test_without_a_price_the_cost_is_unknown_not_zero(provider, model, says):
    cost = cost_of(Catalogue(), provider, model, Usage(input_tokens=10, output_tokens=5), NOW)
    assert cost.usd is None and cost.input_usd is None and says in cost.note


def test_an_answer_without_usage_has_an_unknown_cost():
    cost = cost_of(Catalogue(), "openai", "gpt-4o", Usage(), NOW)
    assert cost.usd is None and cost.note == "the answer reported no token usage"


def test_a_custom_provider_can_be_priced_as_a_catalogue_provider():
    usage = Usage(input_tokens=1000, output_tokens=100)
    catalogue = Catalogue(price_providers={"fastcloud": "groq"})
    cost = cost_of(catalogue, "fastcloud", "llama-3.3-70b-versatile", usage, NOW)
    assert cost.usd == pytest.approx(oracle("groq", "llama-3.3-70b-versatile", usage), rel=1e-9)


def test_the_lookups_clients_cause_are_bounded_in_bytes():
    from plumbing.bounded import CacheBudget

    budget = CacheBudget(64 * 1024)
    catalogue = Catalogue(cache_budget=budget)
    for n in range(5_000):
        catalogue.rates("openai", f"made-up-model-{n}-" + "x" * 100, NOW)
    assert 0 < budget.used <= budget.max_bytes
    assert catalogue.rates("openai", "gpt-4o", NOW) != catalogue.rates("openai", "made-up-model-1-", NOW)
