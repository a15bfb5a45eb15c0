"""The price of a model: the operator's configured prices first, then pydantic's ``genai-prices`` catalogue (the
snapshot bundled with the installed package, kept current by its maintainers; upgrade the package for new prices).

Prices are USD per million tokens, resolved per (provider, model) and remembered in a cache bounded in bytes: model
names come from clients, so neither the lookups nor the misses may grow without bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import genai_prices
from genai_prices import data_snapshot
from genai_prices.types import ModelInfo, ModelPrice, TieredPrices
from pydantic import BaseModel, ConfigDict, Field

from plumbing.bounded import BoundedDict, CacheBudget

CATALOGUE = f"genai-prices {genai_prices.__version__}"
BUILTIN_CATALOGUE_PROVIDERS: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "google",
    # The catalogue's AWS provider matches Bedrock's ids with and without a region prefix (``us.``, ``eu.``,
    # ``global.``) and inside an inference profile's ARN.
    "bedrock": "aws",
}
"""Warden's provider slugs → the catalogue's provider ids. A custom provider's name is looked up as it is (``groq``,
``mistral``, ``openrouter``, ``deepseek``… are catalogue ids) unless ``price_providers`` maps it."""

Price = Decimal | TieredPrices


class ModelPrices(BaseModel):
    """A configured price, USD per million tokens. Cache and reasoning rates default to the input and output ones."""

    model_config = ConfigDict(extra="forbid")

    input_mtok: float = Field(ge=0)
    output_mtok: float = Field(ge=0)
    cache_read_mtok: float | None = Field(default=None, ge=0)
    cache_write_mtok: float | None = Field(default=None, ge=0)
    reasoning_mtok: float | None = Field(default=None, ge=0)


@dataclass(frozen=True, slots=True)
class Rates:
    """One model's rates, each a flat price or the catalogue's tiers (chosen by the prompt's size)."""

    input: Price
    cache_read: Price
    cache_write: Price
    output: Price
    reasoning: Price
    source: str


def configured_rates(prices: ModelPrices) -> Rates:
    def d(value: float | None, default: float) -> Decimal:
        return Decimal(str(default if value is None else value))

    return Rates(
        input=d(prices.input_mtok, 0),
        cache_read=d(prices.cache_read_mtok, prices.input_mtok),
        cache_write=d(prices.cache_write_mtok, prices.input_mtok),
        output=d(prices.output_mtok, 0),
        reasoning=d(prices.reasoning_mtok, prices.output_mtok),
        source="configured price",
    )


def catalogue_rates(model: ModelInfo, at: datetime) -> Rates | None:
    """The catalogue's rates for ``model`` at ``at`` (prices change over time), None when it has no token prices."""
    prices = model.get_prices(at)
    input_price, output_price = prices.input_mtok, prices.output_mtok
    if input_price is None or output_price is None:
        return None
    return Rates(
        input=input_price,
        cache_read=prices.cache_read_mtok if prices.cache_read_mtok is not None else input_price,
        cache_write=prices.cache_write_mtok if prices.cache_write_mtok is not None else input_price,
        output=output_price,
        reasoning=(
            prices.output_text_reasoning_mtok if prices.output_text_reasoning_mtok is not None else output_price
        ),
        source=f"{CATALOGUE}: {model.id}",
    )


class Catalogue:
    """Rates by (Warden provider slug, model name as requested)."""

    def __init__(
        self,
        configured: dict[str, ModelPrices] | None = None,
        price_providers: dict[str, str] | None = None,
        cache_budget: CacheBudget | None = None,
    ) -> None:
        """``configured``: prices by ``provider/model`` (``*/model`` for a model at any provider), over the
        catalogue; ``price_providers``: provider slug → the catalogue provider id to price it as; ``cache_budget``:
        the bytes the memo of lookups draws on (the process's cache budget by default)."""
        self._configured = {key: configured_rates(prices) for key, prices in (configured or {}).items()}
        self._providers = {**BUILTIN_CATALOGUE_PROVIDERS, **(price_providers or {})}
        self._snapshot = data_snapshot.get_snapshot()
        self._models: BoundedDict[Rates | ModelInfo | str] = BoundedDict(budget=cache_budget)
        """By (provider, model): the rates when they do not change over time, else the catalogue's model (its
        prices resolved at each interaction's time), or why there is no price."""

    def rates(self, provider: str, model: str, at: datetime) -> Rates | str:
        """The rates for ``model`` at ``provider`` at time ``at``, or why there are none."""
        if self._configured:  # most deployments configure no price: no keys to build on every answer
            configured = self._configured.get(f"{provider}/{model}") or self._configured.get(f"*/{model}")
            if configured is not None:
                return configured
        if not model:
            return "the request named no model"
        key = (provider, model)
        found = self._models.get(key)
        if found is None:
            found = self._models.put(key, self._find(provider, model, at))
        if isinstance(found, ModelInfo):
            return catalogue_rates(found, at) or f"{CATALOGUE} has no token prices for {found.id!r}"
        return found

    def _find(self, provider: str, model: str, at: datetime) -> Rates | ModelInfo | str:
        catalogue_provider = data_snapshot.find_provider_by_id(
            self._snapshot.providers, self._providers.get(provider, provider)
        )
        found = None
        if catalogue_provider is not None:
            found = catalogue_provider.find_model(model.lower(), all_providers=self._snapshot.providers)
        if found is None:
            return f"no price for model {model!r} at provider {provider!r} in {CATALOGUE} or the configured prices"
        if not isinstance(found.prices, ModelPrice):
            return found  # prices that change on given dates: resolved for each interaction
        return catalogue_rates(found, at) or f"{CATALOGUE} has no token prices for {found.id!r}"
