"""Usage totals of a run, kept by folding `model_called` events: the gateway's budget checks and the
run's result both read a `Ledger`, and a resumed run rebuilds it from the journal."""

from __future__ import annotations

from dataclasses import dataclass, field

from .events import ModelCalled
from .models import TaskId, TokenUsage, Usage


def usage_of(event: ModelCalled) -> Usage:
    """The exact usage a `model_called` event carries."""
    tokens = TokenUsage(
        input_tokens=event.tokens_in,
        cached_input_tokens=event.tokens_cached,
        output_tokens=event.tokens_out,
        reasoning_tokens=event.tokens_reasoning,
        requests=event.requests,
        estimated_tokens=event.tokens_estimated,
    )
    unpriced = (event.model,) if event.unpriced else ()
    return Usage(tokens=tokens, cost_usd=event.cost_usd, unpriced_models=unpriced)


@dataclass(slots=True)
class Ledger:
    """Usage totals of one run, by role, by tier and by task; wasted usage is also kept apart."""

    total: Usage = field(default_factory=Usage)
    by_role: dict[str, Usage] = field(default_factory=lambda: {})
    by_tier: dict[tuple[str, str], Usage] = field(default_factory=lambda: {})
    """By (tier name, requested model id)."""
    by_task: dict[TaskId, Usage] = field(default_factory=lambda: {})
    wasted: Usage = field(default_factory=Usage)
    """Billed for replies that were not used: invalid, cut in transit, abandoned at cancel."""
    calls: int = 0
    calls_by_tier: dict[str, int] = field(default_factory=lambda: {})
    calls_by_task: dict[TaskId, int] = field(default_factory=lambda: {})
    retries: int = 0
    """Transport retries: HTTP requests sent again for the same logical call."""

    def add(self, event: ModelCalled) -> None:
        """Count one `model_called` event (a wasted try of a call that goes on is not a call)."""
        usage = usage_of(event)
        self.total += usage
        self.calls += int(event.final)
        self.calls_by_tier[event.tier] = self.calls_by_tier.get(event.tier, 0) + int(event.final)
        if event.wasted:
            self.wasted += usage
        self.by_role[event.role] = self.by_role.get(event.role, Usage()) + usage
        key = (event.tier, event.request_model or event.model)
        self.by_tier[key] = self.by_tier.get(key, Usage()) + usage
        if event.task_id is not None:
            self.by_task[event.task_id] = self.by_task.get(event.task_id, Usage()) + usage
            counted = self.calls_by_task.get(event.task_id, 0) + int(event.final)
            self.calls_by_task[event.task_id] = counted

    def copy(self) -> Ledger:
        """An independent copy (a resumed run's gateway starts from the journal's totals)."""
        return Ledger(
            total=self.total,
            by_role=dict(self.by_role),
            by_tier=dict(self.by_tier),
            by_task=dict(self.by_task),
            wasted=self.wasted,
            calls=self.calls,
            calls_by_tier=dict(self.calls_by_tier),
            calls_by_task=dict(self.calls_by_task),
            retries=self.retries,
        )
