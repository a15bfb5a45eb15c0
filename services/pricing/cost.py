"""The cost of one interaction: each kind of token priced at its own rate, as pure arithmetic."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from genai_prices.types import calc_unit_price

from schemas.cost import Cost
from schemas.view import Usage
from services.pricing.catalogue import Catalogue, Price, Rates

_PER = 1_000_000


def _usd(price: Price, count: int, prompt_tokens: int) -> Decimal:
    if type(price) is Decimal:
        # A flat price, the common case: the same arithmetic as ``calc_unit_price`` (price * count / per, in
        # Decimal), without its checks, on every answer.
        return price * count / _PER
    # The catalogue's own tier rule: a tiered price is chosen by the size of the whole prompt.
    return calc_unit_price(price, count, prompt_tokens, _PER)


def priced(rates: Rates, usage: Usage) -> Cost:
    """``usage`` priced at ``rates``: its parts are disjoint (cached and cache-written tokens are taken out of the
    input, reasoning ones out of the output) so they add up to the total."""
    prompt = usage.input_tokens or 0
    cached, written = usage.cached_tokens or 0, usage.cache_write_tokens or 0
    output, reasoning = usage.output_tokens or 0, usage.reasoning_tokens or 0
    parts = (
        _usd(rates.input, max(prompt - cached - written, 0), prompt),
        _usd(rates.cache_read, cached, prompt),
        _usd(rates.cache_write, written, prompt),
        _usd(rates.output, max(output - reasoning, 0), prompt),
        _usd(rates.reasoning, reasoning, prompt),
    )
    input_usd, cached_usd, write_usd, output_usd, reasoning_usd = (float(part) for part in parts)
    return Cost(
        usd=float(sum(parts)),
        input_usd=input_usd,
        cached_usd=cached_usd,
        cache_write_usd=write_usd,
        output_usd=output_usd,
        reasoning_usd=reasoning_usd,
        estimated=usage.estimated,
        note=rates.source,
    )


def cost_of(catalogue: Catalogue, provider: str, model: str, usage: Usage, at: datetime) -> Cost:
    """What an interaction cost; unknown (``usd`` None, with the reason) when the answer reported no tokens or the
    model has no price. Never 0 for unknown."""
    if usage.input_tokens is None and usage.output_tokens is None:
        return Cost(note="the answer reported no token usage")
    rates = catalogue.rates(provider, model, at)
    if isinstance(rates, str):
        return Cost(estimated=usage.estimated, note=rates)
    return priced(rates, usage)
