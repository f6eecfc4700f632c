"""The run's state as a pure fold over its journal: `state = fold(events)`.

`apply` is the one place a run's state changes. The live driver journals an event, then applies it;
a resumed run, `runs show` and the report fold the same events, so they all read the same truth.
No I/O, no clock, no randomness.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from .events import (
    AnswerWritten,
    AttemptFinished,
    DispatchStopped,
    EscalationDecided,
    Event,
    GraphReplanned,
    MergeStarted,
    ModelCalled,
    ModelCallRetried,
    PatchApplied,
    PlanValidated,
    ReviewFailed,
    RunFinished,
    RunResumed,
    RunStarted,
    TaskFailed,
    TaskPlanned,
    TaskRetried,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
    TaskUnreviewed,
    ToolCalled,
    WorkspaceMerged,
)
from .ledger import Ledger
from .models import (
    ErrorInfo,
    Failed,
    PatchRecord,
    Plan,
    RunId,
    Skipped,
    Succeeded,
    TaskId,
    TaskResult,
    TaskSpec,
    Unreviewed,
    Usage,
)

TaskPhase = Literal[
    "planned", "running", "finished", "merging", "succeeded", "failed", "skipped", "unreviewed"
]
"""planned: waiting to start (again); running: an attempt is out; finished: a done report waits
for its verdict; merging: accepted, its copy being merged into the main tree; the rest are
terminal (skipped and unreviewed may be resumable)."""

_NO_RUN = RunId("")
TERMINAL_PHASES: frozenset[TaskPhase] = frozenset({"succeeded", "failed", "skipped", "unreviewed"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """A done attempt's report, kept until the reviewer's verdict."""

    summary: str
    outputs: Mapping[str, str]
    check_output: str | None
    tier: str
    attempt: int
    duration_s: float


@dataclass(slots=True, kw_only=True)
class TaskRecord:
    """Everything the run knows about one task."""

    spec: TaskSpec
    tier: str
    """The tier its next (or current) attempt runs at."""
    phase: TaskPhase = "planned"
    attempts: int = 0
    attempts_at_tier: int = 0
    feedback: list[str] = field(default_factory=lambda: [])
    """Lines for the next attempt: failed attempts' summaries and reviewer feedback."""
    rejections: int = 0
    review_failures: int = 0
    report: Report | None = None
    result: TaskResult | None = None
    resumable: bool = False
    """Ended only because the run stopped (cancel, budget): a resumed run takes it up again."""
    calls: list[str] = field(default_factory=lambda: [])
    """Tool calls of the attempt in progress (what an interrupted attempt had done)."""
    merge: tuple[str, str] | None = None
    """(commit, base) of the accepted copy while it is merged into the main tree."""
    started_at: float | None = None
    """When its first attempt started (the run's clock); None until one does."""
    ended_at: float | None = None
    """When it reached its terminal phase; None while it has not (or runs again after a resume)."""


@dataclass(slots=True, kw_only=True)
class RunState:
    """One run as its journal tells it."""

    run_id: RunId = _NO_RUN
    goal: str = ""
    workdir: str = ""
    context: str = ""
    ladder: tuple[str, ...] = ()
    """Model ids, bottom tier first."""
    tiers: tuple[str, ...] = ()
    started_at: float = 0.0
    tasks: dict[TaskId, TaskRecord] = field(default_factory=lambda: {})
    """In plan order once the plan is complete (dependencies first)."""
    plan_complete: bool = False
    rationale: str = ""
    escalations: int = 0
    replans: int = 0
    ledger: Ledger = field(default_factory=Ledger)
    patches: dict[tuple[TaskId, str], PatchRecord] = field(default_factory=lambda: {})
    stop_reason: str = ""
    stop_detail: str = ""
    answer: str | None = None
    status: str | None = None
    """Set by `run_finished`; None while the run is in progress (or was interrupted)."""
    resumes: int = 0
    seq: int = 0
    """Events applied so far (the journal's last sequence number)."""

    @property
    def results(self) -> dict[TaskId, TaskResult]:
        """Terminal results so far, in plan order."""
        return {t: r.result for t, r in self.tasks.items() if r.result is not None}

    def plan(self) -> Plan:
        """The plan as known so far."""
        specs = tuple(r.spec for r in self.tasks.values())
        return Plan(goal=self.goal, tasks=specs, rationale=self.rationale)

    def usage_of(self, task_id: TaskId) -> Usage:
        return self.ledger.by_task.get(task_id) or Usage()


def fold(events: Iterable[Event], state: RunState | None = None) -> RunState:
    """Apply `events` in order to `state` (a new one by default) and return it."""
    state = state if state is not None else RunState()
    for event in events:
        apply(state, event)
    return state


def apply(state: RunState, event: Event) -> RunState:
    """Apply one event to `state` in place and return it; events that change nothing are fine."""
    state.seq += 1
    handler = _HANDLERS.get(type(event))
    if handler is not None:
        handler(state, event)
    return state


# -- run -------------------------------------------------------------------------------------
def _run_started(state: RunState, e: RunStarted) -> None:
    state.run_id, state.goal, state.started_at = e.run_id, e.goal, e.at
    state.workdir, state.context, state.ladder, state.tiers = (
        e.workdir,
        e.context,
        e.ladder,
        e.tiers,
    )


def _run_resumed(state: RunState, e: RunResumed) -> None:
    """What the stopped process left in flight starts again; what only the stop ended resumes."""
    state.resumes += 1
    state.status, state.stop_reason, state.stop_detail = None, "", ""
    for rec in state.tasks.values():
        if rec.phase == "running":
            rec.feedback.append(_interrupted_note(rec))
        if rec.phase == "running" or (rec.phase == "skipped" and rec.resumable):
            rec.phase, rec.result, rec.ended_at = "planned", None, None
            state.answer = None  # more work will be done: the answer is written again
        elif rec.phase == "unreviewed" and rec.resumable:
            rec.phase, rec.result, rec.ended_at = "finished", None, None
            state.answer = None
        rec.resumable = False


def _interrupted_note(rec: TaskRecord) -> str:
    """What the next attempt is told about one the stopped process left unfinished."""
    done = ", ".join(rec.calls) if rec.calls else "no tool yet"
    return (
        f"attempt {rec.attempts} was interrupted when the run stopped, after calling: {done}. "
        "Patches it applied are kept (applying the same patch again is a no-op); shell commands "
        "ran and run again if called again; their full output is in the run directory (shell/)."
    )


def _tool_called(state: RunState, e: ToolCalled) -> None:
    rec = state.tasks.get(e.task_id)
    if rec is not None:
        rec.calls.append(f"{e.tool} ({e.call_id}{', error' if e.is_error else ''})")


def _dispatch_stopped(state: RunState, e: DispatchStopped) -> None:
    if not state.stop_reason:
        state.stop_reason, state.stop_detail = e.reason, e.detail


def _answer_written(state: RunState, e: AnswerWritten) -> None:
    state.answer = e.answer


def _run_finished(state: RunState, e: RunFinished) -> None:
    state.status = e.status
    state.stop_reason = e.stop_reason or state.stop_reason
    state.stop_detail = e.stop_detail or state.stop_detail


# -- plan ------------------------------------------------------------------------------------
def _task_planned(state: RunState, e: TaskPlanned) -> None:
    state.tasks[e.spec.id] = TaskRecord(spec=e.spec, tier=e.tier)


def _plan_validated(state: RunState, e: PlanValidated) -> None:
    """The plan is whole: keep its tasks in its order; anything else streamed before is gone."""
    state.tasks = {TaskId(t): state.tasks[TaskId(t)] for t in e.task_ids}
    state.plan_complete = True
    if not e.replan:
        state.rationale = e.rationale


def _graph_replanned(state: RunState, e: GraphReplanned) -> None:
    state.replans += 1
    for tid in e.replaced:
        state.tasks.pop(tid, None)
    for tid, deps in e.rewired.items():
        rec = state.tasks[tid]
        rec.spec = dataclasses.replace(rec.spec, deps=deps)


# -- attempts --------------------------------------------------------------------------------
def _task_started(state: RunState, e: TaskStarted) -> None:
    rec = state.tasks[e.task_id]
    rec.phase, rec.attempts, rec.tier = "running", e.attempt, e.tier
    rec.attempts_at_tier += 1
    rec.calls = []
    if rec.started_at is None:
        rec.started_at = e.at


def _attempt_finished(state: RunState, e: AttemptFinished) -> None:
    rec = state.tasks[e.task_id]
    if e.outcome != "done":
        rec.phase = "planned"  # the decision that follows retries, escalates or fails it
        return
    rec.phase = "finished"
    rec.report = Report(
        summary=e.summary,
        outputs=dict(e.outputs),
        check_output=e.check_output,
        tier=e.tier,
        attempt=e.attempt,
        duration_s=e.duration_ms / 1000,
    )


def _task_retried(state: RunState, e: TaskRetried) -> None:
    rec = state.tasks[e.task_id]
    rec.phase = "planned"
    rec.feedback.append(e.note)
    rec.rejections += e.trigger == "review_rejected"


def _escalation_decided(state: RunState, e: EscalationDecided) -> None:
    if e.to_tier is None:
        return  # the task_failed that follows ends it
    rec = state.tasks[e.task_id]
    rec.phase, rec.tier, rec.attempts_at_tier = "planned", e.to_tier, 0
    rec.feedback.append(e.note)
    rec.rejections += e.trigger == "review_rejected"
    state.escalations += 1


def _review_failed(state: RunState, e: ReviewFailed) -> None:
    for tid in e.task_ids:
        state.tasks[tid].review_failures += 1


def _patch_applied(state: RunState, e: PatchApplied) -> None:
    state.patches[(e.task_id, e.key)] = PatchRecord(task_id=e.task_id, key=e.key, files=e.files)


def _merge_started(state: RunState, e: MergeStarted) -> None:
    rec = state.tasks[e.task_id]
    rec.phase, rec.merge = "merging", (e.commit, e.base)


def _workspace_merged(state: RunState, e: WorkspaceMerged) -> None:
    state.tasks[e.task_id].merge = None
    for tid, deps in e.rewired.items():
        rec = state.tasks[tid]
        rec.spec = dataclasses.replace(rec.spec, deps=deps)


def _model_called(state: RunState, e: ModelCalled) -> None:
    state.ledger.add(e)


def _model_call_retried(state: RunState, e: ModelCallRetried) -> None:
    state.ledger.retries += 1


# -- outcomes --------------------------------------------------------------------------------
def _task_succeeded(state: RunState, e: TaskSucceeded) -> None:
    rec = state.tasks[e.task_id]
    report = rec.report
    assert report is not None, f"task {e.task_id} succeeded without a report"
    rec.phase, rec.report, rec.ended_at = "succeeded", None, e.at
    rec.result = Succeeded(
        task_id=e.task_id,
        summary=report.summary,
        outputs=dict(report.outputs),
        tier=report.tier,
        attempts=rec.attempts,
        usage=state.usage_of(e.task_id),
        duration_s=report.duration_s,
    )


def _task_failed(state: RunState, e: TaskFailed) -> None:
    rec = state.tasks[e.task_id]
    rec.phase, rec.report, rec.ended_at = "failed", None, e.at
    rec.result = Failed(
        task_id=e.task_id,
        error=ErrorInfo(type=e.error_type, message=e.message, retryable=e.retryable),
        tier=e.tier,
        attempts=e.attempts,
        usage=state.usage_of(e.task_id),
    )


def _task_skipped(state: RunState, e: TaskSkipped) -> None:
    rec = state.tasks[e.task_id]
    rec.phase, rec.resumable, rec.ended_at = "skipped", e.cause != "blocked", e.at
    rec.result = Skipped(task_id=e.task_id, reason=e.reason, blocked_by=e.blocked_by)


def _task_unreviewed(state: RunState, e: TaskUnreviewed) -> None:
    rec = state.tasks[e.task_id]
    report = rec.report
    assert report is not None, f"task {e.task_id} unreviewed without a report"
    rec.phase, rec.resumable, rec.ended_at = "unreviewed", e.resumable, e.at
    rec.result = Unreviewed(
        task_id=e.task_id,
        reason=e.reason,
        summary=report.summary,
        outputs=dict(report.outputs),
        tier=report.tier,
        attempts=rec.attempts,
        usage=state.usage_of(e.task_id),
    )


_Handler = Callable[[RunState, Any], None]
_HANDLERS: Mapping[type, _Handler] = {
    cast("type", cls): cast("_Handler", fn)
    for cls, fn in (
        (RunStarted, _run_started),
        (RunResumed, _run_resumed),
        (DispatchStopped, _dispatch_stopped),
        (AnswerWritten, _answer_written),
        (RunFinished, _run_finished),
        (TaskPlanned, _task_planned),
        (PlanValidated, _plan_validated),
        (GraphReplanned, _graph_replanned),
        (TaskStarted, _task_started),
        (AttemptFinished, _attempt_finished),
        (TaskRetried, _task_retried),
        (EscalationDecided, _escalation_decided),
        (ReviewFailed, _review_failed),
        (PatchApplied, _patch_applied),
        (MergeStarted, _merge_started),
        (WorkspaceMerged, _workspace_merged),
        (ModelCalled, _model_called),
        (ModelCallRetried, _model_call_retried),
        (ToolCalled, _tool_called),
        (TaskSucceeded, _task_succeeded),
        (TaskFailed, _task_failed),
        (TaskSkipped, _task_skipped),
        (TaskUnreviewed, _task_unreviewed),
    )
}
"""Events not listed (task_ready, review_decided, model_call_failed, ...) are journaled for the
record and change no state."""
