"""Domain values: tasks, plans, results, usage and limits. Frozen, pure, serializable."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, NewType

TaskId = NewType("TaskId", str)
RunId = NewType("RunId", str)


@dataclass(frozen=True, slots=True, kw_only=True)
class AcceptanceCheck:
    """A shell command that must exit 0 in the task's workspace for the task to count as done."""

    command: str
    """Run with the shell tool's policy and sandbox."""
    timeout_s: float = 60.0
    """The check fails when it runs longer than this."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskSpec:
    """One node of the plan: what an executor must do and what it may use."""

    id: TaskId
    instruction: str
    """What to do, written for an executor that sees only this task and its inputs."""
    deps: tuple[TaskId, ...] = ()
    """Tasks whose outputs this one needs; it starts the moment they have all succeeded."""
    tools: tuple[str, ...] = ()
    """Names of the tools this task may call."""
    produces: str = ""
    """What the task must hand back (the reviewer and dependents rely on it)."""
    check: AcceptanceCheck | None = None
    tier_hint: str | None = None
    """Start at this tier instead of the ladder's bottom (e.g. plan-shaped sub-work)."""
    est_latency_s: float | None = None
    """Latency estimate used for critical-path-first ordering; None means unknown."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """The planner's decomposition of a goal."""

    goal: str
    tasks: tuple[TaskSpec, ...]
    rationale: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenUsage:
    """Tokens of one or more model calls, as the API reported them."""

    input_tokens: int = 0
    """All prompt tokens, cached ones included."""
    cached_input_tokens: int = 0
    """The part of `input_tokens` billed at the cached rate."""
    output_tokens: int = 0
    """All completion tokens, reasoning ones included."""
    reasoning_tokens: int = 0
    """The part of `output_tokens` spent on hidden reasoning."""
    requests: int = 0
    estimated_tokens: int = 0
    """The part of input + output that is our estimate: the API reported no usage (a stream
    without a usage chunk, a reply abandoned at cancel or cut in transit)."""

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            requests=self.requests + other.requests,
            estimated_tokens=self.estimated_tokens + other.estimated_tokens,
        )

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """Tokens plus their price; `cost_usd` is exact for every priced model."""

    tokens: TokenUsage = field(default_factory=TokenUsage)
    cost_usd: float = 0.0
    unpriced_models: tuple[str, ...] = ()
    """Models used without a price-table entry: their tokens count, their cost is missing."""

    def __add__(self, other: Usage) -> Usage:
        unpriced = tuple(sorted(set(self.unpriced_models) | set(other.unpriced_models)))
        return Usage(
            tokens=self.tokens + other.tokens,
            cost_usd=self.cost_usd + other.cost_usd,
            unpriced_models=unpriced,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorInfo:
    """A serializable description of why an attempt or a task failed."""

    type: str
    message: str
    retryable: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Succeeded:
    """The task produced an accepted result."""

    kind: Literal["succeeded"] = "succeeded"
    task_id: TaskId
    summary: str
    outputs: Mapping[str, str] = field(default_factory=lambda: {})
    tier: str
    attempts: int
    usage: Usage = field(default_factory=Usage)
    duration_s: float = 0.0
    """Wall time of the accepted attempt; 0 when the result was reused from before."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Failed:
    """The task failed for good at the top of the ladder or with a terminal error."""

    kind: Literal["failed"] = "failed"
    task_id: TaskId
    error: ErrorInfo
    tier: str
    attempts: int
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True, slots=True, kw_only=True)
class Skipped:
    """The task never ran: a dependency failed, or the run was cancelled first."""

    kind: Literal["skipped"] = "skipped"
    task_id: TaskId
    reason: str
    blocked_by: TaskId | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Unreviewed:
    """The work finished, but the reviewer could not judge it: kept, never accepted.

    Its dependents do not start on unreviewed work, and the run is not `completed`.
    """

    kind: Literal["unreviewed"] = "unreviewed"
    task_id: TaskId
    reason: str
    summary: str
    outputs: Mapping[str, str] = field(default_factory=lambda: {})
    tier: str
    attempts: int
    usage: Usage = field(default_factory=Usage)


TaskResult = Succeeded | Failed | Skipped | Unreviewed


@dataclass(frozen=True, slots=True, kw_only=True)
class FileChange:
    """One file a side effect changed, by content hash, so a replay can tell whether it happened."""

    path: str
    """Relative to the workspace root."""
    before_sha256: str | None
    """None: the file did not exist before."""
    after_sha256: str | None
    """None: the change deleted the file."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PatchRecord:
    """A patch a task applied, journaled before its files are written (write-ahead)."""

    task_id: TaskId
    key: str
    """sha256 of the patch text: the change's identity within its task."""
    files: tuple[FileChange, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class TierSpec:
    """One rung of the escalation ladder."""

    name: str
    """A short role name used in events and caps: mini, base, frontier."""
    model: str
    """The model id sent to the backend."""


DEFAULT_LADDER: tuple[TierSpec, ...] = (
    TierSpec(name="mini", model="gpt-5.4-mini"),
    TierSpec(name="base", model="gpt-5.4"),
    TierSpec(name="frontier", model="gpt-5.5"),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """Spending caps for one scope (a tier, or each task); None means no cap."""

    max_cost_usd: float | None = None
    max_total_tokens: int | None = None
    max_model_calls: int | None = None


BudgetKind = Literal["cost", "tokens", "calls"]
"""Which cap of a budget a refused call would have passed."""

StopReason = Literal["budget: cost", "budget: tokens", "budget: calls", "cancelled", "refused"]
"""Why a run stopped starting work before its plan ran out: a run budget was spent (the
answer is then written from the held-back share), the run was cancelled, or `on_plan` refused."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Bounds on one run. Every count here is a hard cap."""

    max_parallel: int = 8
    """Tasks running at once, across tiers."""
    per_tier_parallel: Mapping[str, int] = field(default_factory=lambda: {})
    """Optional cap per tier name (e.g. {"frontier": 2})."""
    task_timeout_s: float = 600.0
    """One attempt of one task, all its turns and tool calls included."""
    max_turns: int = 16
    """Model turns of one executor attempt before it counts as a turn-limit failure."""
    max_plan_repairs: int = 2
    """Times an invalid plan goes back to the planner with the validation error."""
    max_replans: int = 4
    """Mid-run graph edits accepted from the reviewer."""
    max_reviews_per_task: int = 3
    """Reviewer rejections of one task before it is failed outright."""
    max_cost_usd: float | None = None
    """The run's cost cap, every role and tier included; calls reserve their worst case first."""
    max_total_tokens: int | None = None
    max_model_calls: int | None = None
    tier_budgets: Mapping[str, Budget] = field(default_factory=lambda: {})
    """Caps per tier name (planner and reviewer calls count on the tier they run on); a call
    they refuse fails its task (no escalation) instead of stopping the run."""
    task_budget: Budget | None = None
    """Caps for each task, over all its attempts and escalations together; a call it refuses
    fails the task (its dependents are skipped) and the run goes on."""
    answer_share: float = 0.1
    """Share of each run cap held back for the final answer: work stops when only that is left,
    and the answer is written from what succeeded (one call is held back of `max_model_calls`)."""
    stop_grace_s: float = 30.0
    """After a budget stop, how long running attempts may go on (they still fit their own
    reservations) before they are cancelled; their tasks end skipped, resumably."""
    reserve_output_tokens: int = 4_096
    """A call's output reserved against the budgets when its request sets no
    `max_output_tokens` (the budgets hold a call's worst case before it starts)."""
    max_dep_output_chars: int = 8_000
    """Per dependency, how much of its outputs a dependent sees."""
    outage_grace_s: float = 300.0
    """How long a model's calls may keep failing in transport (429s, 5xx, cut connections,
    timeouts) while their tasks wait, before they fail with a reason naming the outage."""
    max_review_failures: int = 3
    """Review calls of one batch that may fail (invalid reply, an outage) before its tasks end
    unreviewed; transport faults inside one call are retried by the gateway and do not count."""


RunStatus = Literal["completed", "partial", "failed", "cancelled", "running", "interrupted"]
"""running / interrupted describe a run still in progress, or whose process is gone, as `runs show`
projects it from the journal; a finished run is one of the first four."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TierUsage:
    """Usage of one tier, for the run report."""

    tier: str
    model: str
    usage: Usage


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """Everything a run produced, including partial progress when it stopped early."""

    run_id: RunId
    goal: str
    status: RunStatus
    answer: str
    plan: Plan | None
    results: Mapping[TaskId, TaskResult]
    usage: Usage
    usage_by_tier: tuple[TierUsage, ...] = ()
    usage_by_role: Mapping[str, Usage] = field(default_factory=lambda: {})
    usage_by_task: Mapping[TaskId, Usage] = field(default_factory=lambda: {})
    """Every model call made for a task, all its attempts included (reviews are by role)."""
    escalations: int = 0
    """Times a task moved up a tier."""
    escalation_rate: float = 0.0
    """Escalations per executed task (a first-class metric of a tiered setup)."""
    replans: int = 0
    wasted_usage: Usage = field(default_factory=Usage)
    """The part of `usage` billed for replies that were not used (invalid, cut, abandoned)."""
    model_retries: int = 0
    """HTTP requests sent again after transport faults (never counted as attempts)."""
    run_dir: str | None = None
    """Where events.jsonl and result.json of this run live."""
    stop_reason: StopReason | None = None
    """Why the run stopped starting work early; None when its plan ran to the end."""
    stop_detail: str = ""
    """The stop in words (which cap, spent and reserved against what)."""

    @property
    def succeeded(self) -> tuple[Succeeded, ...]:
        return tuple(r for r in self.results.values() if isinstance(r, Succeeded))

    @property
    def failed(self) -> tuple[Failed, ...]:
        return tuple(r for r in self.results.values() if isinstance(r, Failed))

    @property
    def skipped(self) -> tuple[Skipped, ...]:
        return tuple(r for r in self.results.values() if isinstance(r, Skipped))

    @property
    def unreviewed(self) -> tuple[Unreviewed, ...]:
        return tuple(r for r in self.results.values() if isinstance(r, Unreviewed))
