"""A plan before it runs: what each task and the whole run may cost, and `on_plan`'s decision.

Pure: `estimate_plan` takes the plan, the run's settings (`CostModel`) and what earlier runs cost
(`RunStore.cost_history`) and returns values; nothing here calls a model or reads a clock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from .escalation import EscalationPolicy
from .llm import ModelRequest, ToolDefinition, UserMessage, estimate_input_tokens
from .models import Limits, Plan, TaskId, TaskSpec, TierSpec, TokenUsage, Usage
from .plan import task_key
from .preview_text import render_preview
from .pricing import PriceTable

Basis = Literal["history", "model"]
"""history: what the same task cost in earlier runs; model: the token model below."""

OVERHEAD_KEY = "overhead:review+synthesis"
"""The cost history's row for review and synthesis per executed task (task keys are hex)."""

_WORKER_FRAME_TOKENS = 300
"""The executor's fixed prompt, its report schema and the task's headings."""
_TYPICAL_OUTPUT = 300
"""One turn's output in the low case: a tool call, or a short report."""
_TOOL_RESULT = 400
_TOOL_RESULT_HIGH = 2_000
"""What one tool result adds to the conversation, in the low and the high case."""
_DEP_SHARE_CHARS = 1_200
"""What one dependency's outputs usually take of `Limits.max_dep_output_chars`."""
_HIGH_TURNS = 8
"""The high case's turns per attempt: `Limits.max_turns`, at most this many."""
_RETRY_ALLOWANCE = 0.5
"""expected = low plus this share of it, for retries, escalations and longer replies."""
_REVIEW_FRAME_TOKENS = 600
_REVIEW_OUTPUT = 100
_REVIEW_OUTPUT_HIGH = 400
"""One task's share of a review call: its prompt, and the verdict in the low and high case."""
_SYNTH_FRAME_TOKENS = 400
_SYNTH_LINE = 60
_SYNTH_LINE_HIGH = 300
_SYNTH_OUTPUT = 500
"""The synthesis call: its prompt, one result line per task, the answer."""
_HISTORY_LOW = 0.8
_HISTORY_HIGH = 1.25
"""A history-based range is the cheapest and dearest earlier run, widened by these factors."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoricCost:
    """What one task (by `plan.task_key`) cost in earlier runs, all its attempts included."""

    samples: int
    low_usd: float
    """The cheapest run of it."""
    high_usd: float
    """The dearest run of it."""
    usd: float
    """The running mean of the first samples, then an exponential average (`store.blend`)."""
    tier: str = ""
    """The tier its last run ended at."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CostRange:
    """A cost in USD as a low, an expected and a high figure."""

    low_usd: float = 0.0
    expected_usd: float = 0.0
    high_usd: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskEstimate:
    """What one task may cost, every attempt and escalation included."""

    task_id: TaskId
    tier: str
    """The tier its first attempt runs at (its tier hint, else the ladder's bottom)."""
    low_usd: float
    expected_usd: float
    high_usd: float
    basis: Basis
    samples: int = 0
    """Earlier runs of the task behind a history-based estimate."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanEstimate:
    """What running a plan may cost: per task, planning (already spent), review and synthesis."""

    tasks: tuple[TaskEstimate, ...]
    planning_usd: float
    """What the planner's calls for this plan actually cost (spent whatever is decided)."""
    overhead: CostRange
    """Review and synthesis by the top tier."""
    overhead_basis: Basis
    low_usd: float
    """planning + every task's low + the overhead's low; likewise expected and high."""
    expected_usd: float
    high_usd: float
    unpriced_models: tuple[str, ...] = ()
    """Models the estimate counts as $0 because the price table does not know them."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CostModel:
    """The run's settings an estimate is priced by."""

    ladder: tuple[TierSpec, ...]
    top: TierSpec
    """The tier that plans, reviews and writes the answer."""
    limits: Limits
    policy: EscalationPolicy
    prices: PriceTable
    review: Literal["all", "none"] = "all"
    tools: Mapping[str, ToolDefinition] = field(default_factory=lambda: {})
    """The tool definitions as the executors see them (they are part of every prompt)."""
    max_output_tokens: int | None = None
    """The executors' output cap; None: `Limits.reserve_output_tokens`, as the budget assumes."""

    @property
    def output_cap(self) -> int:
        return self.max_output_tokens or self.limits.reserve_output_tokens

    def start_index(self, task: TaskSpec) -> int:
        """Where the task's first attempt runs on the ladder, as the supervisor decides it."""
        names = [t.name for t in self.ladder]
        return names.index(task.tier_hint) if task.tier_hint in names else 0


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanPreview:
    """A validated plan with its cost estimate: what `Engine.plan` returns and `on_plan` sees."""

    goal: str
    plan: Plan
    estimate: PlanEstimate
    workdir: str = ""

    def render(self) -> str:
        """The DAG as a table (deps, tier, tools, estimate per task), then the totals."""
        return render_preview(self)


@dataclass(frozen=True, slots=True)
class Accept:
    """Run the plan as previewed."""


@dataclass(frozen=True, slots=True)
class EditPlan:
    """Run this plan instead (validated like the planner's; an invalid one fails the run)."""

    plan: Plan


@dataclass(frozen=True, slots=True)
class Refuse:
    """Run nothing: every task ends skipped naming the reason, the run ends cancelled."""

    reason: str = "the plan was not approved"


PlanDecision = Accept | EditPlan | Refuse
OnPlan = Callable[[PlanPreview], PlanDecision | Awaitable[PlanDecision]]
"""Called with the preview once the plan is valid and before any task starts."""


def estimate_plan(
    plan: Plan,
    model: CostModel,
    *,
    history: Mapping[str, HistoricCost] | None = None,
    planning: Usage | None = None,
) -> PlanEstimate:
    """Estimate what running `plan` may cost, per task and in total.

    A task the history knows (same `plan.task_key`: instruction and tools) is estimated from
    what it cost before: expected = its running mean, low / high = its cheapest / dearest run
    widened by 20 % / 25 %. Any other task by tokens, priced without the cache discount:
    low = one attempt at its start tier of one turn (two with tools: a tool call, then the
    report) with ~300 output tokens a turn; expected = low x 1.5 (retries, longer replies);
    high = every attempt the escalation policy allows (`max_attempts_per_tier` at each tier
    from the start up) of `max_turns` turns (at most 8), each writing the full output cap, the
    conversation growing by that and a 2k-token tool result every turn. The input is the task's
    prompt (`llm.estimate_input_tokens` of goal, instruction and tool definitions, plus the
    executor's fixed prompt and its dependencies' outputs). Review and synthesis by the top tier
    come from the history's cost per executed task when it has one, else from the same kind of
    token model. Planning is what the planner's calls actually cost.
    """
    spent = planning or Usage()
    known = history or {}
    unpriced: set[str] = set(spent.unpriced_models)
    tasks = tuple(_task_estimate(t, plan.goal, model, known, unpriced) for t in plan.tasks)
    overhead, basis = _overhead(plan, model, known, unpriced)
    return PlanEstimate(
        tasks=tasks,
        planning_usd=spent.cost_usd,
        overhead=overhead,
        overhead_basis=basis,
        low_usd=spent.cost_usd + sum(t.low_usd for t in tasks) + overhead.low_usd,
        expected_usd=spent.cost_usd + sum(t.expected_usd for t in tasks) + overhead.expected_usd,
        high_usd=spent.cost_usd + sum(t.high_usd for t in tasks) + overhead.high_usd,
        unpriced_models=tuple(sorted(unpriced)),
    )


def _task_estimate(
    task: TaskSpec,
    goal: str,
    model: CostModel,
    history: Mapping[str, HistoricCost],
    unpriced: set[str],
) -> TaskEstimate:
    start = model.start_index(task)
    tier = model.ladder[start].name
    seen = history.get(task_key(task))
    if seen is not None and seen.samples > 0:
        return TaskEstimate(
            task_id=task.id,
            tier=tier,
            low_usd=seen.low_usd * _HISTORY_LOW,
            expected_usd=seen.usd,
            high_usd=max(seen.high_usd * _HISTORY_HIGH, seen.usd),
            basis="history",
            samples=seen.samples,
        )
    span = _by_tokens(task, goal, model, start, unpriced)
    return TaskEstimate(
        task_id=task.id,
        tier=tier,
        low_usd=span.low_usd,
        expected_usd=span.expected_usd,
        high_usd=span.high_usd,
        basis="model",
    )


def _by_tokens(
    task: TaskSpec, goal: str, model: CostModel, start: int, unpriced: set[str]
) -> CostRange:
    """The token model of `estimate_plan` for one task."""
    limits, cap = model.limits, model.output_cap
    prompt = _prompt_tokens(task, goal, model)
    deps = len(task.deps) * min(limits.max_dep_output_chars, _DEP_SHARE_CHARS) // 4
    deps_high = len(task.deps) * limits.max_dep_output_chars // 4
    turns = min(2 if task.tools else 1, limits.max_turns)
    first = _Turns(prompt=prompt + deps, turns=turns, output=min(_TYPICAL_OUTPUT, cap))
    low = _usd_of(model.prices, model.ladder[start].model, first.tokens, unpriced)
    high_turns = _Turns(
        prompt=prompt + deps_high,
        turns=min(limits.max_turns, _HIGH_TURNS),
        output=cap,
        tool_result=_TOOL_RESULT_HIGH,
    )
    attempts = model.policy.max_attempts_per_tier
    high = sum(
        attempts * _usd_of(model.prices, tier.model, high_turns.tokens, unpriced)
        for tier in model.ladder[start:]
    )
    high = max(high, low)
    return CostRange(
        low_usd=low, expected_usd=min(low * (1 + _RETRY_ALLOWANCE), high), high_usd=high
    )


def _prompt_tokens(task: TaskSpec, goal: str, model: CostModel) -> int:
    """The first turn's input: the executor's frame, the task as it reads it, its tools."""
    request = ModelRequest(
        role="worker",
        model="",
        messages=(UserMessage(content="\n".join((goal, task.instruction, task.produces))),),
        tools=tuple(model.tools[n] for n in task.tools if n in model.tools),
    )
    return _WORKER_FRAME_TOKENS + estimate_input_tokens(request)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Turns:
    """One attempt's shape: each turn resends the conversation, which grows turn by turn."""

    prompt: int
    turns: int
    output: int
    """Output tokens per turn."""
    tool_result: int = _TOOL_RESULT

    @property
    def tokens(self) -> TokenUsage:
        growth = self.output + self.tool_result
        input_tokens = self.turns * self.prompt + growth * self.turns * (self.turns - 1) // 2
        return TokenUsage(
            input_tokens=input_tokens, output_tokens=self.turns * self.output, requests=self.turns
        )


def _usd_of(prices: PriceTable, model: str, tokens: TokenUsage, unpriced: set[str]) -> float:
    usage = prices.cost(model, tokens)
    unpriced.update(usage.unpriced_models)
    return usage.cost_usd


def _overhead(
    plan: Plan, model: CostModel, history: Mapping[str, HistoricCost], unpriced: set[str]
) -> tuple[CostRange, Basis]:
    """Review and synthesis: by the history's cost per executed task, else by tokens."""
    n = len(plan.tasks)
    seen = history.get(OVERHEAD_KEY)
    if seen is not None and seen.samples > 0:
        return CostRange(
            low_usd=seen.low_usd * n * _HISTORY_LOW,
            expected_usd=seen.usd * n,
            high_usd=max(seen.high_usd * _HISTORY_HIGH, seen.usd) * n,
        ), "history"
    top, cap = model.top.model, model.output_cap
    goal = len(plan.goal) // 4
    low = _usd_of(
        model.prices,
        top,
        TokenUsage(
            input_tokens=_SYNTH_FRAME_TOKENS + goal + n * _SYNTH_LINE, output_tokens=_SYNTH_OUTPUT
        ),
        unpriced,
    )
    high = _usd_of(
        model.prices,
        top,
        TokenUsage(
            input_tokens=_SYNTH_FRAME_TOKENS + goal + n * _SYNTH_LINE_HIGH, output_tokens=cap
        ),
        unpriced,
    )
    if model.review == "all":
        asked = sum(len(t.instruction) + len(t.produces) for t in plan.tasks) // 4
        frame = n * _REVIEW_FRAME_TOKENS + asked
        once = TokenUsage(
            input_tokens=frame + n * _TYPICAL_OUTPUT, output_tokens=n * _REVIEW_OUTPUT
        )
        worst = TokenUsage(input_tokens=frame + n * cap, output_tokens=n * _REVIEW_OUTPUT_HIGH)
        low += _usd_of(model.prices, top, once, unpriced)
        reviews = max(1, model.limits.max_reviews_per_task)
        high += reviews * _usd_of(model.prices, top, worst, unpriced)
    high = max(high, low)
    expected = min(low * (1 + _RETRY_ALLOWANCE), high)
    return CostRange(low_usd=low, expected_usd=expected, high_usd=high), "model"
