"""A run's progress as its events arrive: each task's status, tier, attempt, time and cost, the
run's totals and an ETA. What the live table and the plain progress lines show.

Pure: a projection folded from events (no clock, no I/O; `now` is passed in). Unlike
`fold.RunState` it accepts a partial stream: a resumed run's sinks see only the events after the
resume, so a task first met in the middle of its life is added as it is met.
"""

from __future__ import annotations

import graphlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from .events import Event, GraphReplanned, PlanValidated, RunFinished, TaskPlanned
from .ledger import Ledger
from .models import TaskId, TaskSpec
from .plan import task_key

TaskStatus = Literal[
    "waiting",
    "ready",
    "running",
    "reviewing",
    "retrying",
    "escalated",
    "merging",
    "succeeded",
    "failed",
    "skipped",
    "unreviewed",
]
"""waiting: for its dependencies; ready: for a free slot; retrying / escalated: its next attempt
is decided (same tier / a higher one) and waits to start; reviewing: a done report waits for its
verdict; merging: accepted, its copy is being merged."""
TERMINAL: frozenset[TaskStatus] = frozenset({"succeeded", "failed", "skipped", "unreviewed"})
ACTIVE: frozenset[TaskStatus] = frozenset({"running", "reviewing", "merging"})
_CALIBRATION = (0.25, 4.0)
"""Bounds of the observed/estimated ratio, so one odd task cannot swing the ETA wildly."""


@dataclass(slots=True, kw_only=True)
class TaskProgress:
    """One row of the table."""

    id: TaskId
    spec: TaskSpec | None = None
    """None for a task first met after a resume (its spec was planned before)."""
    status: TaskStatus = "waiting"
    tier: str = ""
    model: str = ""
    attempt: int = 0
    started_at: float | None = None
    """When its first attempt (seen) started."""
    ended_at: float | None = None
    note: str = ""
    """The latest thing worth a glance: a summary, an error, a skip reason, feedback."""
    key: str | None = None
    """Its `plan.task_key`, once worked out (for its latency history)."""

    def elapsed_s(self, now: float) -> float | None:
        """From its first attempt's start to its end, or to `now` while it goes on."""
        if self.started_at is None:
            return None
        return max(0.0, (self.ended_at if self.ended_at is not None else now) - self.started_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class Counts:
    """How many tasks are in which state."""

    total: int
    finished: int
    """Terminal: succeeded, failed, skipped or unreviewed."""
    succeeded: int
    failed: int
    skipped: int
    unreviewed: int
    active: int
    """Running, in review or merging."""


@dataclass(slots=True, kw_only=True)
class Progress:
    """The run so far. `apply` each event in order; read the tasks, `counts()` and `eta_s(now)`."""

    history: Mapping[str, float] = field(default_factory=lambda: {})
    """Seconds by `plan.task_key`, from earlier runs (`RunStore.latency_history`); may be empty."""
    run_id: str = ""
    goal: str = ""
    started_at: float | None = None
    """When the run (or its resume) started, by the run's clock."""
    finished_at: float | None = None
    status: str = ""
    """The run's final status once `run_finished` arrived; empty until then."""
    stop_reason: str = ""
    tasks: dict[TaskId, TaskProgress] = field(default_factory=lambda: {})
    """In plan order (dependencies first once the plan is validated)."""
    plan_seen: bool = False
    """A task was planned in this stream (a fresh plan, or a resume that plans again)."""
    plan_complete: bool = False
    answered: bool = False
    ledger: Ledger = field(default_factory=Ledger)
    escalations: int = 0
    retries: int = 0
    """Attempts run again at the same tier (a failed attempt, a reviewer's retry)."""
    replans: int = 0
    peak_active: int = 0
    """The most tasks seen in progress at once: the width the ETA assumes."""

    def apply(self, event: Event) -> None:
        """Update from one event; kinds that change no row are fine."""
        handler = _RUN_HANDLERS.get(event.kind)
        if handler is not None:
            handler(self, event)
            return
        task_id = getattr(event, "task_id", None)
        if isinstance(task_id, str):
            _on_task_event(self, self.task(TaskId(task_id)), event)

    def task(self, task_id: TaskId) -> TaskProgress:
        """The task's row, added if this is the first event that names it."""
        row = self.tasks.get(task_id)
        if row is None:
            row = self.tasks[task_id] = TaskProgress(id=task_id)
        return row

    def counts(self) -> Counts:
        """Tasks by state, over the tasks known so far."""
        statuses = [t.status for t in self.tasks.values()]
        return Counts(
            total=len(statuses),
            finished=sum(s in TERMINAL for s in statuses),
            succeeded=statuses.count("succeeded"),
            failed=statuses.count("failed"),
            skipped=statuses.count("skipped"),
            unreviewed=statuses.count("unreviewed"),
            active=sum(s in ACTIVE for s in statuses),
        )

    @property
    def phase(self) -> str:
        """planning, running, answering, or the final status."""
        if self.status:
            return self.status
        if not self.tasks or (self.plan_seen and not self.plan_complete and not self._started):
            return "planning"
        if self.counts().finished == len(self.tasks):
            return "answering"
        return "running"

    @property
    def _started(self) -> bool:
        return any(t.started_at is not None for t in self.tasks.values())

    def eta_s(self, now: float) -> float | None:
        """Seconds until the known tasks are all done, or None while there is nothing to go by.

        The method: each open task is expected to take its plan estimate (`est_latency_s`), else
        what the same task took in earlier runs (`history`, by `plan.task_key`), else the mean
        time of the tasks that succeeded in this run so far (first start to acceptance, review
        included); with none of these for some open task there is no ETA. Estimates are scaled
        by how this run has kept to them so far (observed / estimated time of the tasks that
        succeeded, bounded to 0.25-4). A task in progress is owed its expected time less what it
        has run. The ETA is the larger of the longest chain of owed time through the open tasks'
        dependencies (the critical path, as `PlanGraph.priority` ranks it) and the owed time in
        all divided by the most tasks seen in progress at once (the run's effective parallelism;
        before any task has started, the critical path alone).
        It covers the tasks known so far (a plan still streaming may add more) and not the
        final answer written after them.
        """
        open_tasks = [t for t in self.tasks.values() if t.status not in TERMINAL]
        if not open_tasks:
            return 0.0
        observed = self._observed()
        scale = _calibration(observed)
        mean = sum(d for d, _ in observed) / len(observed) if observed else None
        owed: dict[TaskId, float] = {}
        for row in open_tasks:
            estimate = self._estimate_s(row)
            expected = estimate * scale if estimate is not None else mean
            if expected is None:
                return None
            ran = row.elapsed_s(now) if row.status in ACTIVE else None
            owed[row.id] = max(0.0, expected - (ran or 0.0))
        path = _longest_chain(owed, {t.id: t.spec.deps if t.spec else () for t in open_tasks})
        if path is None or not self.peak_active:
            return path
        return max(path, sum(owed.values()) / self.peak_active)

    def _estimate_s(self, row: TaskProgress) -> float | None:
        """The plan's estimate for the task, else its history; None when neither knows it."""
        if row.spec is None:
            return None
        if row.spec.est_latency_s is not None:
            return row.spec.est_latency_s
        if not self.history:
            return None
        if row.key is None:
            row.key = task_key(row.spec)
        return self.history.get(row.key)

    def _observed(self) -> list[tuple[float, float | None]]:
        """(duration, estimate) of each task that succeeded in this stream."""
        done: list[tuple[float, float | None]] = []
        for row in self.tasks.values():
            if row.status == "succeeded" and row.started_at is not None:
                duration = (row.ended_at or row.started_at) - row.started_at
                done.append((duration, self._estimate_s(row)))
        return done


def _calibration(observed: list[tuple[float, float | None]]) -> float:
    """How much longer (or shorter) than estimated the tasks done so far took, bounded."""
    pairs = [(d, e) for d, e in observed if e is not None and e > 0]
    if not pairs:
        return 1.0
    ratio = sum(d for d, _ in pairs) / sum(e for _, e in pairs)
    low, high = _CALIBRATION
    return min(high, max(low, ratio))


def _longest_chain(
    owed: Mapping[TaskId, float], deps: Mapping[TaskId, tuple[TaskId, ...]]
) -> float | None:
    """The largest sum of owed time along a dependency chain of open tasks (None on a cycle)."""
    graph = {tid: tuple(d for d in deps[tid] if d in owed) for tid in owed}
    try:
        order = tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError:
        return None  # only a validated plan is acyclic; what streamed before may not be
    finish: dict[TaskId, float] = {}
    for tid in order:
        finish[tid] = owed[tid] + max((finish[d] for d in graph[tid]), default=0.0)
    return max(finish.values(), default=0.0)


# -- run-level events ---------------------------------------------------------------------------
def _run_started(p: Progress, e: Event) -> None:
    if e.kind == "run_started":
        p.goal = e.goal
    p.run_id, p.started_at = e.run_id, e.at


def _task_planned(p: Progress, e: Event) -> None:
    assert isinstance(e, TaskPlanned)
    row = p.task(e.spec.id)
    row.spec, row.tier, row.key, p.plan_seen = e.spec, e.tier, None, True


def _plan_validated(p: Progress, e: Event) -> None:
    """The plan is whole: its tasks in its order; anything streamed that it dropped is gone."""
    assert isinstance(e, PlanValidated)
    p.tasks = {TaskId(t): p.task(TaskId(t)) for t in e.task_ids}
    p.plan_seen = p.plan_complete = True
    p.replans += e.replan


def _graph_replanned(p: Progress, e: Event) -> None:
    assert isinstance(e, GraphReplanned)
    for tid in e.replaced:
        p.tasks.pop(tid, None)


def _run_ended(p: Progress, e: Event) -> None:
    match e.kind:
        case "model_called":
            p.ledger.add(e)
        case "model_call_retried":
            p.ledger.retries += 1
        case "dispatch_stopped":
            p.stop_reason = p.stop_reason or e.reason
        case "answer_written":
            p.answered = True
        case _:  # run_finished: `_RUN_HANDLERS` routes no other kind here
            assert isinstance(e, RunFinished)
            p.status, p.finished_at = e.status, e.at
            p.stop_reason = e.stop_reason or p.stop_reason


_RUN_HANDLERS = {
    "run_started": _run_started,
    "run_resumed": _run_started,
    "task_planned": _task_planned,
    "plan_validated": _plan_validated,
    "graph_replanned": _graph_replanned,
    "model_called": _run_ended,
    "model_call_retried": _run_ended,
    "dispatch_stopped": _run_ended,
    "answer_written": _run_ended,
    "run_finished": _run_ended,
}
"""Events about the run (or that name a task only for accounting, like `model_called`)."""


# -- task events --------------------------------------------------------------------------------
def _on_task_event(p: Progress, row: TaskProgress, e: Event) -> None:
    match e.kind:
        case "task_ready":
            row.status = "ready"
        case "task_started":
            again = row.status in ("retrying", "escalated")  # keep why, while it runs again
            row.status, row.attempt, row.tier, row.model = "running", e.attempt, e.tier, e.model
            row.started_at = row.started_at if row.started_at is not None else e.at
            row.ended_at, row.note = None, row.note if again else ""
            p.peak_active = max(p.peak_active, p.counts().active)
        case "tool_called":
            row.note = f"{e.tool}{' (error)' if e.is_error else ''}"
        case "merge_started":
            row.status = "merging"
        case "workspace_merged" if e.conflicts:
            row.note = f"merge conflicts: {', '.join(e.conflicts)}"
        case _:
            _on_decision(p, row, e)


def _on_decision(p: Progress, row: TaskProgress, e: Event) -> None:
    """What an attempt's end led to: review, another attempt, a higher tier."""
    match e.kind:
        case "attempt_finished":
            row.status = "reviewing" if e.outcome == "done" else row.status
            row.note = e.summary if e.outcome == "done" else _joined(e.outcome, e.detail)
        case "task_retried":
            row.status, p.retries = "retrying", p.retries + 1
            row.note = _joined(e.trigger, e.feedback)
        case "escalation_decided" if e.to_tier is not None:
            row.status, row.tier, p.escalations = "escalated", e.to_tier, p.escalations + 1
            row.note = f"{e.from_tier} -> {e.to_tier}: {e.trigger}"
        case "review_decided" if e.verdict != "accept":
            row.note = _joined(f"review: {e.verdict}", e.feedback)
        case _:
            _on_outcome(row, e)


def _on_outcome(row: TaskProgress, e: Event) -> None:
    match e.kind:
        case "task_succeeded":
            _ended(row, "succeeded", e.at, e.summary)
            row.tier = e.tier
        case "task_failed":
            _ended(row, "failed", e.at, _joined(e.error_type, e.message))
        case "task_skipped":
            _ended(row, "skipped", e.at, e.reason)
        case "task_unreviewed":
            _ended(row, "unreviewed", e.at, e.reason)
        case _:
            pass


def _ended(row: TaskProgress, status: TaskStatus, at: float, note: str) -> None:
    row.status, row.note = status, note
    row.ended_at = at if row.started_at is not None else None


def _joined(head: str, tail: str) -> str:
    return f"{head}: {tail}" if tail else head


def one_line(text: str, limit: int = 100) -> str:
    """`text` on one line (whitespace collapsed), cut to `limit` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
