"""Prices per million tokens and the exact cost of a `TokenUsage`. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .models import TokenUsage, Usage


@dataclass(frozen=True, slots=True, kw_only=True)
class Price:
    """USD per one million tokens."""

    input: float
    cached_input: float
    output: float

    def batch(self) -> Price:
        """The Batch API price: half of both."""
        return Price(
            input=self.input / 2, cached_input=self.cached_input / 2, output=self.output / 2
        )


FREE = Price(input=0.0, cached_input=0.0, output=0.0)

# gpt-5.4 family list prices (USD / 1M tokens). Cached input is 10% of input for the whole family,
# as published for mini ($0.075 of $0.75); override any entry through `PriceTable`.
DEFAULT_PRICES: Mapping[str, Price] = {
    "gpt-5.4-mini": Price(input=0.75, cached_input=0.075, output=4.50),
    "gpt-5.4": Price(input=2.50, cached_input=0.25, output=15.00),
    "gpt-5.4-nano": Price(input=0.20, cached_input=0.02, output=1.25),
}


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Model id → price. Unknown models are reported as unpriced, never guessed."""

    prices: Mapping[str, Price]

    @classmethod
    def default(cls, **overrides: Price) -> PriceTable:
        return cls({**DEFAULT_PRICES, **overrides})

    def lookup(self, model: str) -> Price | None:
        """Exact id first, then the longest known id that prefixes a dated snapshot name."""
        if (price := self.prices.get(model)) is not None:
            return price
        candidates = [m for m in self.prices if model.startswith(m + "-2")]
        return self.prices[max(candidates, key=len)] if candidates else None

    def cost(self, model: str, tokens: TokenUsage) -> Usage:
        """Usage with its USD cost; cached input is billed at the cached rate, the rest at input."""
        price = self.lookup(model)
        if price is None:
            return Usage(tokens=tokens, cost_usd=0.0, unpriced_models=(model,))
        uncached = tokens.input_tokens - tokens.cached_input_tokens
        usd = (
            uncached * price.input
            + tokens.cached_input_tokens * price.cached_input
            + tokens.output_tokens * price.output
        ) / 1_000_000
        return Usage(tokens=tokens, cost_usd=usd)
