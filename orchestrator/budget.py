"""Budgets reserved before spending: a model call starts only if its worst case fits in what each
budget that applies (the run's, its tier's, its task's) has left after everything already spent
and everything still in flight. Pure bookkeeping."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from .errors import BudgetExceededError, ConfigError
from .ledger import Ledger
from .models import Budget, BudgetKind, Limits, TaskId, TierSpec, Usage
from .pricing import PriceTable

Scope = Literal["run", "tier", "task"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Hold:
    """One call's worst case: the input as sent, the whole output cap, no cache discount."""

    tokens: int
    cost_usd: float
    calls: int = 1
    tier: str = ""
    task: TaskId | None = None
    answer: bool = False
    """The final answer's call: it may use the run's held-back share."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    """Which budget a call would pass, and by how much, in words."""

    scope: Scope
    subject: str
    """The tier name or task id ("" for the run)."""
    kind: BudgetKind
    message: str

    def error(self) -> BudgetExceededError:
        return BudgetExceededError(
            self.message, scope=self.scope, subject=self.subject, kind=self.kind
        )


@dataclass(slots=True)
class _Held:
    calls: int = 0
    tokens: int = 0
    cost_usd: float = 0.0

    def add(self, hold: Hold, sign: int) -> None:
        self.calls += sign * hold.calls
        self.tokens += sign * hold.tokens
        self.cost_usd += sign * hold.cost_usd


@dataclass(frozen=True, slots=True)
class _Spent:
    calls: int
    usage: Usage


@dataclass(slots=True)
class Reservations:
    """What the calls in flight may still spend, per scope, on top of the ledger's actual usage."""

    run: _Held = field(default_factory=_Held)
    tiers: dict[str, _Held] = field(default_factory=lambda: {})
    tasks: dict[TaskId, _Held] = field(default_factory=lambda: {})

    def refusal(
        self, limits: Limits, ledger: Ledger, hold: Hold, *, spent_only: bool = False
    ) -> Refusal | None:
        """Why `hold` does not fit (run budget first, then its tier's, then its task's), or None.

        With `spent_only`, calls in flight are left out: a refusal then means the call can never
        fit, while one that only fails with them may fit once they have ended.
        """
        for scope, subject, budget, share in self._scopes(limits, hold):
            spent = _spent(ledger, scope, subject)
            held = _Held() if spent_only else self._held(scope, subject)
            refusal = _check(scope, subject, budget, share, spent, held, hold)
            if refusal is not None:
                return refusal
        return None

    @property
    def busy(self) -> bool:
        """Some call is in flight: its end may free room (every call shares the run's budget)."""
        return self.run.calls > 0

    def take(self, hold: Hold) -> None:
        for held in self._touched(hold):
            held.add(hold, 1)

    def release(self, hold: Hold) -> None:
        """The call ended: its actual usage is in the ledger now, the rest of the hold is free."""
        for held in self._touched(hold):
            held.add(hold, -1)

    def _touched(self, hold: Hold) -> list[_Held]:
        touched = [self.run, self.tiers.setdefault(hold.tier, _Held())]
        if hold.task is not None:
            touched.append(self.tasks.setdefault(hold.task, _Held()))
        return touched

    def _held(self, scope: Scope, subject: str) -> _Held:
        if scope == "run":
            return self.run
        if scope == "tier":
            return self.tiers.get(subject, _Held())
        return self.tasks.get(TaskId(subject), _Held())

    @staticmethod
    def _scopes(limits: Limits, hold: Hold) -> list[tuple[Scope, str, Budget, float]]:
        run = Budget(
            max_cost_usd=limits.max_cost_usd,
            max_total_tokens=limits.max_total_tokens,
            max_model_calls=limits.max_model_calls,
        )
        share = 0.0 if hold.answer else limits.answer_share
        scopes: list[tuple[Scope, str, Budget, float]] = [("run", "", run, share)]
        tier = limits.tier_budgets.get(hold.tier)
        if tier is not None:
            scopes.append(("tier", hold.tier, tier, 0.0))
        if limits.task_budget is not None and hold.task is not None:
            scopes.append(("task", hold.task, limits.task_budget, 0.0))
        return scopes


def held_back(budget: Budget, share: float) -> Budget:
    """What work may use of `budget` when `share` of it is kept for the final answer."""
    calls = budget.max_model_calls
    if calls is not None and share > 0 and calls >= 2:
        calls -= max(1, math.floor(calls * share))
    tokens = budget.max_total_tokens
    return Budget(
        max_cost_usd=None if budget.max_cost_usd is None else budget.max_cost_usd * (1 - share),
        max_total_tokens=None if tokens is None else math.floor(tokens * (1 - share)),
        max_model_calls=calls,
    )


def _spent(ledger: Ledger, scope: Scope, subject: str) -> _Spent:
    if scope == "run":
        return _Spent(calls=ledger.calls, usage=ledger.total)
    if scope == "tier":
        return _Spent(
            calls=ledger.calls_by_tier.get(subject, 0),
            usage=sum((u for (tier, _), u in ledger.by_tier.items() if tier == subject), Usage()),
        )
    task = TaskId(subject)
    return _Spent(calls=ledger.calls_by_task.get(task, 0), usage=ledger.by_task.get(task, Usage()))


def _check(
    scope: Scope, subject: str, budget: Budget, share: float, spent: _Spent, held: _Held, hold: Hold
) -> Refusal | None:
    cap = held_back(budget, share)
    name = "run" if scope == "run" else f"{scope} {subject}"
    kept = " for work (the rest is held back for the final answer)" if share > 0 else ""
    if cap.max_model_calls is not None and spent.calls + held.calls + hold.calls > (
        cap.max_model_calls
    ):
        return Refusal(
            scope=scope,
            subject=subject,
            kind="calls",
            message=f"{name} model call limit reached: {spent.calls} made and {held.calls} in "
            f"flight of {cap.max_model_calls}{kept}",
        )
    used = spent.usage.tokens.total_tokens
    if cap.max_total_tokens is not None and used + held.tokens + hold.tokens > (
        cap.max_total_tokens
    ):
        return Refusal(
            scope=scope,
            subject=subject,
            kind="tokens",
            message=f"{name} token limit reached: {used} used and {held.tokens} reserved of "
            f"{cap.max_total_tokens}{kept}; the next call may take {hold.tokens}",
        )
    cost = spent.usage.cost_usd
    if cap.max_cost_usd is not None and cost + held.cost_usd + hold.cost_usd > cap.max_cost_usd:
        return Refusal(
            scope=scope,
            subject=subject,
            kind="cost",
            message=f"{name} cost limit reached: ${cost:.4f} spent and ${held.cost_usd:.4f} "
            f"reserved of ${cap.max_cost_usd:.4f}{kept}; the next call may cost "
            f"${hold.cost_usd:.4f}",
        )
    return None


def check_budgets(limits: Limits, ladder: tuple[TierSpec, ...], prices: PriceTable) -> None:
    """Refuse budgets that cannot hold: a cost cap must see every model it covers priced (an
    unpriced model would count as free), and a tier budget must name a tier of the ladder.

    Raises:
        ConfigError: an unknown tier in `tier_budgets`, `answer_share` outside [0, 1), or a
            cost cap over a model without a price (the message says how to price it).
    """
    unknown = sorted(set(limits.tier_budgets) - {t.name for t in ladder})
    if unknown:
        names = ", ".join(t.name for t in ladder)
        raise ConfigError(f"tier_budgets names unknown tier(s) {unknown}; the ladder has {names}")
    if not 0 <= limits.answer_share < 1:
        raise ConfigError(f"answer_share must be in [0, 1), got {limits.answer_share}")
    everywhere = limits.max_cost_usd is not None or (
        limits.task_budget is not None and limits.task_budget.max_cost_usd is not None
    )
    costed = [
        t
        for t in ladder
        if everywhere or limits.tier_budgets.get(t.name, Budget()).max_cost_usd is not None
    ]
    unpriced = [t.model for t in costed if prices.lookup(t.model) is None]
    if unpriced:
        names = ", ".join(unpriced)
        raise ConfigError(
            f"a cost budget is set but {names} has no price, so its spend would count as $0: "
            f"price it (prices=PriceTable.default(**{{{unpriced[0]!r}: Price(input=..., "
            "cached_input=..., output=...)}), USD per 1M tokens) or use a priced model"
        )
