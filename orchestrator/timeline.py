"""What the run report draws, computed from a run's events and folded state: attempt spans,
verdict / retry / escalation marks, the DAG's layered layout and the run's actual critical path.

Pure: no I/O, no clock. Times are seconds since the run started.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .events import (
    AttemptFinished,
    EscalationDecided,
    Event,
    ReviewDecided,
    ReviewFailed,
    RunResumed,
    TaskFailed,
    TaskPlanned,
    TaskRetried,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
    TaskUnreviewed,
)
from .fold import RunState, TaskRecord
from .models import TaskId

MarkKind = Literal["review", "retry", "escalation"]
Outcome = Literal["succeeded", "failed", "skipped", "unreviewed", "unfinished", "replaced"]


def outcome_of(rec: TaskRecord | None) -> Outcome:
    """A task's outcome as the report colours it: its terminal phase, `unfinished` while it has
    none (running, or the run was interrupted), `replaced` once a replan removed it (no record)."""
    if rec is None:
        return "replaced"
    match rec.phase:
        case "succeeded" | "failed" | "skipped" | "unreviewed":
            return rec.phase
        case _:
            return "unfinished"


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptSpan:
    """One executor attempt: from its `task_started` to its `attempt_finished`."""

    task_id: TaskId
    attempt: int
    tier: str
    model: str
    start: float
    end: float
    outcome: str
    """The attempt's outcome (done, failed, ...), or `interrupted` when it never reported one
    (the run was killed or cancelled while it ran)."""
    detail: str = ""
    turns: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Mark:
    """A decision about a task at one moment: a review verdict, a retry or an escalation."""

    task_id: TaskId
    at: float
    kind: MarkKind
    label: str
    """The verdict (accept, retry, ...), the retry's trigger, or `mini → base`."""
    reason: str
    """The feedback or note that explains it (model text)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeline:
    """The run laid out in time."""

    span_s: float
    """From the run's start to its last event."""
    attempts: tuple[AttemptSpan, ...]
    marks: tuple[Mark, ...]
    ends: Mapping[TaskId, float]
    """When each task that ran ended (its terminal event, else its last attempt's end)."""
    rows: tuple[TaskId, ...]
    """Tasks in the plan's order, then tasks that ran but a replan removed from the plan."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Layout:
    """The DAG in columns by topological depth; `slot` is the row inside a column."""

    column: Mapping[TaskId, int]
    slot: Mapping[TaskId, int]

    @property
    def columns(self) -> int:
        return max(self.column.values(), default=-1) + 1

    @property
    def slots(self) -> int:
        return max(self.slot.values(), default=-1) + 1


_TERMINAL = (TaskSucceeded, TaskFailed, TaskSkipped, TaskUnreviewed)


def build_timeline(events: Sequence[Event], state: RunState) -> Timeline:
    """Attempt spans, marks and task ends of the run whose journal is `events`."""
    origin = state.started_at or (events[0].at if events else 0.0)
    spans = _Spans(origin=origin, last_at=origin)
    marks: list[Mark] = []
    planned: list[TaskId] = []
    for event in events:
        spans.see(event)
        marks.extend(_marks(event, origin))
        if isinstance(event, TaskPlanned) and event.spec.id not in planned:
            planned.append(event.spec.id)
    spans.close_all()  # still running when the journal ends (in progress, or killed)
    attempts = sorted(spans.attempts, key=lambda a: (a.start, a.task_id, a.attempt))
    replaced = [t for t in planned if t not in state.tasks and t in spans.ran]
    return Timeline(
        span_s=spans.last_at - origin,
        attempts=tuple(attempts),
        marks=tuple(marks),
        ends=spans.ends,
        rows=(*state.tasks, *replaced),
    )


@dataclass(slots=True, kw_only=True)
class _Spans:
    """Pairs each `task_started` with what ended its attempt, in journal order."""

    origin: float
    last_at: float
    open: dict[TaskId, TaskStarted] = field(default_factory=lambda: {})
    attempts: list[AttemptSpan] = field(default_factory=lambda: [])
    ends: dict[TaskId, float] = field(default_factory=lambda: {})
    ran: set[TaskId] = field(default_factory=lambda: set[TaskId]())

    def see(self, event: Event) -> None:
        if isinstance(event, RunResumed):
            self.close_all()  # the stopped process never finished these
        elif isinstance(event, TaskStarted):
            self.open[event.task_id] = event
            self.ran.add(event.task_id)
        elif isinstance(event, AttemptFinished):
            if (began := self.open.pop(event.task_id, None)) is not None:
                self.attempts.append(_finished(began, event, self.origin))
            self.ends[event.task_id] = event.at - self.origin
        elif isinstance(event, _TERMINAL):
            self.close(event.task_id, event.at)
            if not isinstance(event, TaskSkipped) or event.task_id in self.ran:
                self.ends[event.task_id] = event.at - self.origin
        self.last_at = max(self.last_at, event.at)

    def close(self, tid: TaskId, at: float) -> None:
        """End `tid`'s open attempt at `at` without an outcome of its own."""
        began = self.open.pop(tid, None)
        if began is None:
            return
        span = AttemptSpan(
            task_id=tid,
            attempt=began.attempt,
            tier=began.tier,
            model=began.model,
            start=began.at - self.origin,
            end=max(at, began.at) - self.origin,
            outcome="interrupted",
        )
        self.attempts.append(span)
        self.ends[tid] = span.end

    def close_all(self) -> None:
        for tid in list(self.open):
            self.close(tid, self.last_at)


def _finished(began: TaskStarted, done: AttemptFinished, origin: float) -> AttemptSpan:
    return AttemptSpan(
        task_id=began.task_id,
        attempt=done.attempt,
        tier=done.tier,
        model=began.model,
        start=began.at - origin,
        end=max(done.at, began.at) - origin,
        outcome=done.outcome,
        detail=done.detail,
        turns=done.turns,
    )


def _marks(event: Event, origin: float) -> Iterable[Mark]:
    at = event.at - origin
    if isinstance(event, ReviewDecided):
        yield Mark(
            task_id=event.task_id,
            at=at,
            kind="review",
            label=event.verdict,
            reason=event.feedback,
        )
    elif isinstance(event, ReviewFailed):
        for tid in event.task_ids:
            reason = f"{event.failure}: {event.error}"
            yield Mark(task_id=tid, at=at, kind="review", label="no verdict", reason=reason)
    elif isinstance(event, TaskRetried):
        yield Mark(
            task_id=event.task_id,
            at=at,
            kind="retry",
            label=event.trigger,
            reason=event.note or event.feedback,
        )
    elif isinstance(event, EscalationDecided):
        label = f"{event.from_tier} → {event.to_tier or 'gave up'}"
        yield Mark(
            task_id=event.task_id,
            at=at,
            kind="escalation",
            label=label,
            reason=f"{event.trigger}: {event.note}" if event.note else event.trigger,
        )


def dependencies(state: RunState) -> dict[TaskId, tuple[TaskId, ...]]:
    """Each planned task's dependencies, limited to tasks in the plan."""
    return {
        tid: tuple(d for d in rec.spec.deps if d in state.tasks) for tid, rec in state.tasks.items()
    }


def critical_path(
    deps: Mapping[TaskId, tuple[TaskId, ...]], ends: Mapping[TaskId, float]
) -> tuple[TaskId, ...]:
    """The chain of dependencies whose finish times determined when the run's work ended.

    It starts at the task that ended last and walks back, each time to the dependency that ended
    last (the one the task was still waiting for), until a task with no dependency that ran.
    First in `deps` order wins a tie. Returned first task first; empty when nothing ran.
    """
    ran = [t for t in deps if t in ends]
    if not ran:
        return ()
    current = max(ran, key=lambda t: ends[t])  # max keeps the first of equals
    chain = [current]
    while True:
        waited = [d for d in deps[current] if d in ends and d not in chain]
        if not waited:
            return tuple(reversed(chain))
        current = max(waited, key=lambda t: ends[t])
        chain.append(current)


def depths(deps: Mapping[TaskId, tuple[TaskId, ...]]) -> dict[TaskId, int]:
    """Topological depth: 0 for a task without dependencies, else one more than its deepest.

    Whatever the order of `deps` (a merge or a cut-off replan may list a task before its
    dependencies); a cycle, which a valid plan never has, is cut where it closes.
    """
    depth: dict[TaskId, int] = {}
    for root in deps:
        stack: list[tuple[TaskId, bool]] = [(root, False)]
        on_path: set[TaskId] = set()
        while stack:
            tid, expanded = stack.pop()
            if tid in depth:
                continue
            if expanded:
                on_path.discard(tid)
                known = [depth[d] for d in deps.get(tid, ()) if d in depth]
                depth[tid] = 1 + max(known) if known else 0
                continue
            on_path.add(tid)
            stack.append((tid, True))
            todo = (d for d in deps.get(tid, ()) if d not in depth and d not in on_path)
            stack.extend((d, False) for d in todo)
    return depth


def layered_layout(deps: Mapping[TaskId, tuple[TaskId, ...]]) -> Layout:
    """Columns by topological depth; inside a column, tasks sorted by the mean slot of their
    dependencies (fewer crossing edges), then by plan order."""
    column = depths(deps)
    order = {tid: i for i, tid in enumerate(deps)}
    slot: dict[TaskId, int] = {}
    for col in range(max(column.values(), default=-1) + 1):
        members = [t for t in deps if column[t] == col]

        def key(tid: TaskId) -> tuple[float, int]:
            placed = [slot[d] for d in deps[tid] if d in slot]
            return (sum(placed) / len(placed) if placed else float(order[tid]), order[tid])

        for i, tid in enumerate(sorted(members, key=key)):
            slot[tid] = i
    return Layout(column=column, slot=slot)
