"""Budgets reserved before spending: a model call starts only if its worst case fits in what the
run has left after everything already spent and everything still in flight. Pure bookkeeping."""

from __future__ import annotations

from dataclasses import dataclass

from .ledger import Ledger
from .models import Limits


@dataclass(frozen=True, slots=True, kw_only=True)
class Hold:
    """One call's worst case: the input as sent, the whole output cap, no cache discount."""

    tokens: int
    cost_usd: float
    calls: int = 1


@dataclass(slots=True)
class Reservations:
    """What the calls in flight may still spend, on top of the ledger's actual usage."""

    calls: int = 0
    tokens: int = 0
    cost_usd: float = 0.0

    def refusal(self, limits: Limits, ledger: Ledger, hold: Hold) -> str | None:
        """Why `hold` does not fit (the message for `BudgetExceededError`), or None."""
        calls = limits.max_model_calls
        if calls is not None and ledger.calls + self.calls + hold.calls > calls:
            return f"model call limit reached ({calls})"
        if limits.max_total_tokens is not None:
            used = ledger.total.tokens.total_tokens
            if used + self.tokens + hold.tokens > limits.max_total_tokens:
                return (
                    f"token limit reached: {used} used and {self.tokens} reserved of "
                    f"{limits.max_total_tokens}; the next call may take {hold.tokens}"
                )
        if limits.max_cost_usd is not None:
            spent = ledger.total.cost_usd
            if spent + self.cost_usd + hold.cost_usd > limits.max_cost_usd:
                return (
                    f"cost limit reached: ${spent:.4f} spent and ${self.cost_usd:.4f} reserved "
                    f"of ${limits.max_cost_usd:.4f}; the next call may cost ${hold.cost_usd:.4f}"
                )
        return None

    def take(self, hold: Hold) -> None:
        self.calls += hold.calls
        self.tokens += hold.tokens
        self.cost_usd += hold.cost_usd

    def release(self, hold: Hold) -> None:
        """The call ended: its actual usage is in the ledger now, the rest of the hold is free."""
        self.calls -= hold.calls
        self.tokens -= hold.tokens
        self.cost_usd -= hold.cost_usd
