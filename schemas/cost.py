"""What an interaction cost, as the ingress records it on its response event."""

from __future__ import annotations

from pydantic import BaseModel


class Cost(BaseModel):
    """USD, priced part by part from the provider's reported tokens. ``usd`` is None when the cost is not known (no
    price for the model, no usage reported): never 0 for "unknown"; ``note`` then says why."""

    usd: float | None = None
    input_usd: float | None = None
    """Prompt tokens neither read from nor written to a cache."""
    cached_usd: float | None = None
    """Prompt tokens read from the provider's cache."""
    cache_write_usd: float | None = None
    """Prompt tokens written to the provider's cache."""
    output_usd: float | None = None
    """Output tokens other than reasoning ones."""
    reasoning_usd: float | None = None
    estimated: bool = False
    """The provider reported no usage: the tokens priced were counted by Warden."""
    note: str | None = None
    """Where the prices came from (``genai-prices 0.2.5: gpt-4o``, ``configured price``), or why there is no cost."""
