"""Typed events: the source of truth for everything that happens in a run. Sinks render them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Literal, Protocol

from .models import FileChange, RunId, TaskId, TaskSpec


@dataclass(frozen=True, slots=True, kw_only=True)
class _Base:
    run_id: RunId
    at: float
    """Seconds since the epoch, from the run's injected clock."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted(_Base):
    kind: Literal["run_started"] = "run_started"
    goal: str
    ladder: tuple[str, ...]
    """Model ids, bottom tier first."""
    tiers: tuple[str, ...] = ()
    """Tier names, bottom first (what a resumed run maps each task's tier back to)."""
    workdir: str = ""
    context: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResumed(_Base):
    """A new process took over the run from its journal."""

    kind: Literal["run_resumed"] = "run_resumed"
    pid: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanRejected(_Base):
    kind: Literal["plan_rejected"] = "plan_rejected"
    attempt: int
    error: str
    task_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanValidated(_Base):
    kind: Literal["plan_validated"] = "plan_validated"
    task_ids: tuple[str, ...]
    edges: tuple[tuple[str, str], ...]
    """(dependency, dependent) pairs."""
    replan: bool = False
    rationale: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskPlanned(_Base):
    """A task joins the graph (streamed, planned, or added by a replan), with a fresh record."""

    kind: Literal["task_planned"] = "task_planned"
    spec: TaskSpec
    tier: str
    """The tier its first attempt runs at."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskReady(_Base):
    kind: Literal["task_ready"] = "task_ready"
    task_id: TaskId


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskStarted(_Base):
    kind: Literal["task_started"] = "task_started"
    task_id: TaskId
    attempt: int
    tier: str
    model: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCalled(_Base):
    kind: Literal["tool_called"] = "tool_called"
    task_id: TaskId
    tool: str
    call_id: str
    is_error: bool
    duration_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelCalled(_Base):
    kind: Literal["model_called"] = "model_called"
    role: str
    model: str
    tier: str
    task_id: TaskId | None
    tokens_in: int
    tokens_cached: int
    tokens_out: int
    tokens_reasoning: int
    cost_usd: float
    duration_ms: float
    tries: int = 1
    """HTTP requests this logical call took (1 + transport retries)."""
    wasted: bool = False
    """Billed, but the reply was not used (invalid, cut in transit, abandoned at cancel)."""
    tokens_estimated: int = 0
    """How many of the tokens are our estimate because the API reported none."""
    requests: int = 0
    """Requests the API reported in its usage (part of the exact usage the journal keeps)."""
    unpriced: bool = False
    """The model has no price: its tokens count, its cost is unknown."""
    final: bool = True
    """False for a wasted try of a call that went on (not a call of its own for the budget)."""
    request_model: str = ""
    """The model id asked for, when the reply names another (the tier's usage is kept under it)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelCallFailed(_Base):
    kind: Literal["model_call_failed"] = "model_call_failed"
    role: str
    model: str
    task_id: TaskId | None
    error_type: str
    message: str
    retryable: bool
    tries: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelCallRetried(_Base):
    """A transport fault; the gateway sends the same request again after `delay_s`."""

    kind: Literal["model_call_retried"] = "model_call_retried"
    role: str
    model: str
    task_id: TaskId | None
    try_number: int
    """The try that failed (1 = the first request)."""
    error_type: str
    status_code: int | None
    message: str
    delay_s: float
    """This caller's own backoff; the endpoint's shared cooldown may hold it longer."""
    cooldown_s: float
    """The shared cooldown left on the endpoint for every caller (0 when none)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptFinished(_Base):
    """One canonical line per executor attempt."""

    kind: Literal["attempt_finished"] = "attempt_finished"
    task_id: TaskId
    attempt: int
    tier: str
    outcome: str
    """done / failed / ambiguous / error / turn_limit / invalid_output / timeout / check_failed."""
    turns: int
    duration_ms: float
    detail: str = ""
    summary: str = ""
    """The report's whole summary when the outcome is `done` (what review and dependents see)."""
    outputs: Mapping[str, str] = field(default_factory=lambda: {})
    check_output: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskSucceeded(_Base):
    kind: Literal["task_succeeded"] = "task_succeeded"
    task_id: TaskId
    tier: str
    attempts: int
    summary: str
    cost_usd: float = 0.0
    """What the task's own calls cost, all attempts and tiers (live attribution)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskFailed(_Base):
    kind: Literal["task_failed"] = "task_failed"
    task_id: TaskId
    tier: str
    attempts: int
    error_type: str
    message: str
    retryable: bool = False
    reason: str = ""
    """Why it was given up (top of the ladder, too many rejections, a terminal error)."""
    cost_usd: float = 0.0
    """What the task's own calls cost, all attempts and tiers (spent for nothing)."""


SkipCause = Literal["blocked", "cancelled", "budget", "stopped", "refused"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskSkipped(_Base):
    kind: Literal["task_skipped"] = "task_skipped"
    task_id: TaskId
    reason: str
    blocked_by: TaskId | None
    cause: SkipCause = "blocked"
    """blocked: a dependency did not succeed (final); the others end with the run and a resumed
    run starts the task again."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskUnreviewed(_Base):
    """The work finished but the reviewer could not judge it; it is kept and not accepted."""

    kind: Literal["task_unreviewed"] = "task_unreviewed"
    task_id: TaskId
    reason: str
    resumable: bool = False
    """The run stopped before a verdict: a resumed run sends the work to review again."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskRetried(_Base):
    kind: Literal["task_retried"] = "task_retried"
    task_id: TaskId
    tier: str
    attempt: int
    trigger: str
    feedback: str
    note: str = ""
    """The line added to the task's feedback for its next attempt."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewDecided(_Base):
    kind: Literal["review_decided"] = "review_decided"
    task_id: TaskId
    verdict: str
    """accept / retry / replan / escalate."""
    feedback: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewFailed(_Base):
    """A review call gave no verdict for these tasks (budget, outage, a bad reply)."""

    kind: Literal["review_failed"] = "review_failed"
    task_ids: tuple[TaskId, ...]
    failure: str
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EscalationDecided(_Base):
    kind: Literal["escalation_decided"] = "escalation_decided"
    task_id: TaskId
    trigger: str
    from_tier: str
    to_tier: str | None
    """None: the top tier failed, the task fails for good."""
    note: str = ""
    """The line added to the task's feedback for its attempt at the new tier."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GraphReplanned(_Base):
    kind: Literal["graph_replanned"] = "graph_replanned"
    replaced: tuple[TaskId, ...]
    added: tuple[TaskId, ...]
    rewired: Mapping[TaskId, tuple[TaskId, ...]] = field(default_factory=lambda: {})
    """Tasks that depended on a replaced one, with their new dependencies."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PatchApplied(_Base):
    """A patch about to be written (journaled first, so a re-run attempt never applies it twice)."""

    kind: Literal["patch_applied"] = "patch_applied"
    task_id: TaskId
    key: str
    files: tuple[FileChange, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class MergeStarted(_Base):
    """An accepted writing task's copy, committed, is about to be merged into the main tree
    (journaled first: a resumed run merges it again, which changes nothing the second time)."""

    kind: Literal["merge_started"] = "merge_started"
    task_id: TaskId
    commit: str
    base: str


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkspaceMerged(_Base):
    """The task's changes are in the main tree, except `conflicts` (left to a resolve task)."""

    kind: Literal["workspace_merged"] = "workspace_merged"
    task_id: TaskId
    commit: str
    merged: tuple[str, ...]
    conflicts: tuple[str, ...] = ()
    resolve: TaskId | None = None
    """The task planned to resolve the conflicts; the task's dependents wait for it too."""
    rewired: Mapping[TaskId, tuple[TaskId, ...]] = field(default_factory=lambda: {})


@dataclass(frozen=True, slots=True, kw_only=True)
class DispatchStopped(_Base):
    """No new work starts: a run budget ran out, the run was cancelled or its plan refused."""

    kind: Literal["dispatch_stopped"] = "dispatch_stopped"
    reason: str
    """A `StopReason` (`budget: cost`, `cancelled`, ...); journals before it was typed may hold
    free text, which `stop_reason_of` maps back."""
    detail: str = ""
    """The stop in words: which cap, what was spent and reserved."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AnswerWritten(_Base):
    kind: Literal["answer_written"] = "answer_written"
    answer: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFinished(_Base):
    kind: Literal["run_finished"] = "run_finished"
    status: str
    succeeded: int
    failed: int
    skipped: int
    escalations: int
    escalation_rate: float
    unreviewed: int = 0
    model_retries: int = 0
    """HTTP requests sent again after transport faults."""
    wasted_cost_usd: float = 0.0
    """Spent on replies that were not used (invalid, cut in transit, abandoned)."""
    cost_usd: float
    tokens_in: int
    tokens_cached: int
    tokens_out: int
    duration_ms: float
    stop_reason: str = ""
    """Why dispatch stopped early, a `StopReason`; empty when the plan ran to its end."""
    stop_detail: str = ""


Event = (
    RunStarted
    | RunResumed
    | PlanRejected
    | PlanValidated
    | TaskPlanned
    | TaskReady
    | TaskStarted
    | ToolCalled
    | ModelCalled
    | ModelCallFailed
    | ModelCallRetried
    | AttemptFinished
    | TaskSucceeded
    | TaskFailed
    | TaskSkipped
    | TaskUnreviewed
    | TaskRetried
    | ReviewDecided
    | ReviewFailed
    | EscalationDecided
    | GraphReplanned
    | PatchApplied
    | MergeStarted
    | WorkspaceMerged
    | DispatchStopped
    | AnswerWritten
    | RunFinished
)


class EventSink(Protocol):
    """Receives every event of a run, in order, synchronously; must not block."""

    def emit(self, event: Event) -> None: ...


def event_fields(event: Event) -> dict[str, object]:
    """The event as a plain dict (kind first), for JSON and log sinks."""
    data = asdict(event)
    return {"kind": data.pop("kind"), **data}
