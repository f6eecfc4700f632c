"""One executor attempt: its request, its deadline, its check; errors become values.

The supervisor decides what an attempt's outcome means; this module only runs it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import anyio

from .errors import (
    BudgetExceededError,
    ModelAPIError,
    ModelBehaviorError,
    ModelError,
    ModelOutageError,
    ModelTimeoutError,
)
from .escalation import EscalationPolicy, Trigger
from .gateway import Gateway, waits_excluded
from .llm import ToolDefinition
from .models import (
    ErrorInfo,
    Limits,
    Plan,
    RunId,
    StopReason,
    Succeeded,
    TaskId,
    TaskResult,
    TaskSpec,
    TierSpec,
)
from .plan import Estimates
from .roles import (
    AttemptError,
    DepOutput,
    LeafReport,
    ReviewItem,
    Verdict,
    Worker,
    WorkOutcome,
    WorkRequest,
)
from .toolkit import ApprovalCallback, CheckRunner, EffectLog, Tool

if TYPE_CHECKING:
    from .workspaces import MergeOutcome, Workspaces


WRITING_TOOLS = frozenset({"apply_patch", "shell"})
"""Tools that can change the workspace: a task given one works in its own copy."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSetup:
    """Everything fixed for the duration of one run."""

    run_id: RunId
    goal: str
    ladder: tuple[TierSpec, ...]
    limits: Limits
    policy: EscalationPolicy
    review: str
    """all: every done report is reviewed; none: done reports are accepted as they are."""
    workdir: Path
    run_dir: Path
    reviewer_model: str
    tools: Mapping[str, Tool]
    tool_catalog: tuple[ToolDefinition, ...]
    approve: ApprovalCallback | None
    check_runner: CheckRunner | None
    clock: Callable[[], float]
    estimates: Estimates = field(default_factory=Estimates)
    """Latency estimates for priorities: plan hints, then earlier runs (`RunStore`)."""
    effects: EffectLog | None = None
    """The journal's side-effect log, handed to every tool call."""
    workspaces: Workspaces | None = None
    """Per-task copies for writing tasks (None: every task works in the main tree)."""
    commit_journal: Callable[[], None] = lambda: None
    """Makes the journal durable now (before a merge writes the main tree)."""

    def is_writing(self, task: TaskSpec) -> bool:
        """Whether the task works in its own copy: it may write, and copies are on."""
        return self.workspaces is not None and not WRITING_TOOLS.isdisjoint(task.tools)

    def tier_index(self, name: str) -> int:
        """The ladder position of a tier name (the bottom for a name the ladder no longer has)."""
        for i, tier in enumerate(self.ladder):
            if tier.name == name:
                return i
        return 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Crash:
    """An attempt that ended in an error the executor converts to a value."""

    trigger: Trigger
    error: ErrorInfo


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptDone:
    task_id: TaskId
    tier_index: int
    attempt: int
    outcome: WorkOutcome | Crash
    check_output: str | None
    duration_ms: float


ReviewFailure = Literal["budget", "outage", "error"]
"""Why a review call gave no verdicts: the budget stopped it, the reviewer's model was out past
the outage grace, or the call failed otherwise (an invalid reply, a refused request)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewDone:
    items: tuple[ReviewItem, ...]
    verdicts: tuple[Verdict, ...]
    error: str | None = None
    failure: ReviewFailure | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetHit:
    """A run budget refused a call: the run stops starting work."""

    reason: StopReason
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamedTask:
    """A task the streaming planner has finished writing."""

    spec: TaskSpec


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamedPlan:
    """The streaming planner is done: the whole plan, or why there is none."""

    plan: Plan | None
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MergeReady:
    """An accepted writing task's copy is committed; its merge into the main tree starts next."""

    task_id: TaskId
    commit: str
    base: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MergeDone:
    """The merge of an accepted copy ended (its conflicts, if any, are in the outcome)."""

    task_id: TaskId
    outcome: MergeOutcome


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptCut:
    """A running attempt was cancelled: a stop's grace ran out, or its streamed plan was
    rejected."""

    task_id: TaskId
    duration_ms: float = 0.0


Message = (
    AttemptDone
    | AttemptCut
    | ReviewDone
    | BudgetHit
    | StreamedTask
    | StreamedPlan
    | MergeReady
    | MergeDone
)


async def run_attempt(
    setup: RunSetup, worker: Worker, gateway: Gateway, request: WorkRequest, tier_index: int
) -> AttemptDone | BudgetHit:
    """Run one attempt to its outcome; model errors and timeouts become a `Crash` value."""
    started = time.perf_counter()
    check_output: str | None = None
    try:
        with (
            anyio.fail_after(setup.limits.task_timeout_s) as deadline,
            waits_excluded(deadline),
        ):
            outcome: WorkOutcome | Crash = await worker.work(request, gateway)
            if isinstance(outcome, LeafReport) and outcome.status == "done":
                outcome, check_output = await _check(setup, request, outcome)
    except TimeoutError:
        outcome = Crash(
            trigger="timeout",
            error=ErrorInfo(
                type="TimeoutError",
                message=f"attempt exceeded {setup.limits.task_timeout_s}s",
                retryable=True,
            ),
        )
    except BudgetExceededError as exc:
        if exc.scope == "run":
            return BudgetHit(reason=exc.reason, detail=str(exc))
        outcome = Crash(
            trigger="budget", error=ErrorInfo(type=type(exc).__name__, message=str(exc))
        )
    except ModelError as exc:
        outcome = crash_of(exc)
    return AttemptDone(
        task_id=request.task.id,
        tier_index=tier_index,
        attempt=request.attempt,
        outcome=outcome,
        check_output=check_output,
        duration_ms=(time.perf_counter() - started) * 1000,
    )


async def _check(
    setup: RunSetup, request: WorkRequest, report: LeafReport
) -> tuple[WorkOutcome | Crash, str | None]:
    task = request.task
    if task.check is None or setup.check_runner is None:
        return report, None
    result = await setup.check_runner(
        task.check.command, request.workdir, task.check.timeout_s, setup.run_dir
    )
    if result.passed:
        return report, result.output
    return Crash(
        trigger="check_failed",
        error=ErrorInfo(
            type="CheckFailed",
            message=f"acceptance check `{task.check.command}` failed:\n{result.output}",
        ),
    ), None


def work_request(
    setup: RunSetup,
    spec: TaskSpec,
    *,
    tier_index: int,
    attempt: int,
    feedback: tuple[str, ...],
    result_of: Callable[[TaskId], TaskResult | None],
    workdir: Path | None = None,
) -> WorkRequest:
    """The request for one attempt: the task, its tier, its dependencies' outputs, its feedback."""
    return WorkRequest(
        run_id=setup.run_id,
        goal=setup.goal,
        task=spec,
        tier=setup.ladder[tier_index],
        attempt=attempt,
        inputs=tuple(
            dep_output(result_of(d), setup.limits.max_dep_output_chars) for d in spec.deps
        ),
        feedback=feedback,
        tools=tuple(setup.tools[n] for n in spec.tools if n in setup.tools),
        workdir=workdir or setup.workdir,
        run_dir=setup.run_dir,
        max_turns=setup.limits.max_turns,
        approve=setup.approve,
        effects=setup.effects,
    )


def dep_output(result: TaskResult | None, budget: int) -> DepOutput:
    """What a dependent sees of a succeeded dependency, within `budget` characters."""
    assert isinstance(result, Succeeded)
    summary = result.summary[: budget // 4]
    outputs: dict[str, str] = {}
    used, truncated = len(summary), len(result.summary) > len(summary)
    for name, value in result.outputs.items():
        room = budget - used - len(name)
        if room <= 0:
            truncated = True
            break
        outputs[name] = value[:room]
        truncated = truncated or len(value) > room
        used += len(name) + len(outputs[name])
    return DepOutput(task_id=result.task_id, summary=summary, outputs=outputs, truncated=truncated)


def crash_of(exc: ModelError) -> Crash:
    """The value a model error becomes, with the trigger the escalation policy reads."""
    if isinstance(exc, ModelOutageError):
        return Crash(trigger="outage", error=ErrorInfo(type=type(exc).__name__, message=str(exc)))
    if isinstance(exc, ModelTimeoutError):
        return Crash(
            trigger="timeout",
            error=ErrorInfo(type=type(exc).__name__, message=str(exc), retryable=True),
        )
    if isinstance(exc, ModelBehaviorError):
        return Crash(
            trigger="invalid_output", error=ErrorInfo(type=type(exc).__name__, message=str(exc))
        )
    retryable = isinstance(exc, ModelAPIError) and exc.retryable
    return Crash(
        trigger="api_error" if retryable else "fatal_error",
        error=ErrorInfo(type=type(exc).__name__, message=str(exc), retryable=retryable),
    )


def describe(outcome: WorkOutcome | Crash) -> tuple[str, str]:
    """(label, detail) of an outcome, for the attempt's event and the feedback."""
    if isinstance(outcome, LeafReport):
        return outcome.status, outcome.summary
    if isinstance(outcome, AttemptError):
        return outcome.trigger, outcome.detail
    return outcome.trigger, outcome.error.message


def trigger_of(outcome: WorkOutcome | Crash) -> Trigger:
    """What a failed outcome tells the escalation policy."""
    if isinstance(outcome, LeafReport):
        return "ambiguous" if outcome.status == "ambiguous" else "self_failed"
    return outcome.trigger


def error_of(outcome: WorkOutcome | Crash, detail: str) -> ErrorInfo:
    if isinstance(outcome, Crash):
        return outcome.error
    if isinstance(outcome, AttemptError):
        return ErrorInfo(type=outcome.trigger, message=detail)
    return ErrorInfo(type=f"executor_{outcome.status}", message=detail)
