"""One run's task lifecycle: attempts → checks → review → accept / retry / escalate / replan / fail.

The supervisor is a driver around the fold: it decides, writes each decision as an event (the
recorder journals it and applies it to the run's `RunState`), and reads the state back. It never
changes the state itself. The dispatcher calls `handle` with each message, one at a time and never
across an await, so decisions are sequential although attempts, reviews and the streaming planner
run concurrently. Reviewing and graph edits live in `supervisor_review.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from .attempts import (
    AttemptCut,
    AttemptDone,
    MergeDone,
    MergeReady,
    Message,
    ReviewDone,
    RunSetup,
    StreamedPlan,
    StreamedTask,
    describe,
    error_of,
    run_attempt,
    trigger_of,
    work_request,
)
from .escalation import Escalate, GiveUp, Retry, Trigger
from .events import (
    AttemptFinished,
    EscalationDecided,
    Event,
    PlanValidated,
    TaskFailed,
    TaskPlanned,
    TaskReady,
    TaskRetried,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
    TaskUnreviewed,
)
from .executor import Dispatcher
from .fold import RunState, TaskRecord
from .gateway import Gateway
from .models import ErrorInfo, TaskId, TaskSpec
from .plan import PlanGraph
from .review import ReviewQueue
from .roles import LeafReport, Reviewer, ReviewItem, Worker
from .scheduler import Scheduler, SkipNotice
from .supervisor_merge import Merges
from .supervisor_review import Reviews
from .supervisor_stop import Stopping
from .supervisor_stream import Streaming


class Supervisor:
    """Decides each task's next step from the run's state; drives a `Dispatcher`."""

    def __init__(
        self,
        setup: RunSetup,
        graph: PlanGraph,
        *,
        state: RunState,
        emit: Callable[[Event], None],
        worker: Worker,
        reviewer: Reviewer,
        gateway: Gateway,
    ) -> None:
        self.setup = setup
        self.graph = graph
        self.state = state
        self.emit = emit
        self.worker, self.reviewer, self.gateway = worker, reviewer, gateway
        limits = setup.limits
        self.scheduler = Scheduler(
            max_parallel=limits.max_parallel, tier_caps=dict(limits.per_tier_parallel)
        )
        self.queue = ReviewQueue()
        self._kept: set[TaskId] = set()
        """Tasks of this plan whose record (and result) carried over from before."""
        self.plan_complete = bool(graph.order)
        self.dispatcher: Dispatcher[Message] = Dispatcher(
            self.scheduler,
            start_task=self._attempt,
            on_message=self.handle,
            on_started=self._on_started,
        )
        self.reviews = Reviews(self)
        self.streaming = Streaming(self)
        self.merges = Merges(self)
        self.stopping = Stopping(self)
        if graph.order and not state.plan_complete:  # a new plan (else: resumed from the state)
            for tid in graph.order:
                self.admit(graph.tasks[tid])
            self.plan_validated(graph)
        self.add_tasks(graph.order)
        self.reviews.maybe_review()

    def now(self) -> float:
        return self.setup.clock()

    def record(self, task_id: TaskId) -> TaskRecord:
        return self.state.tasks[task_id]

    def task_cost(self, task_id: TaskId) -> float:
        usage = self.state.ledger.by_task.get(task_id)
        return 0.0 if usage is None else round(usage.cost_usd, 9)

    # -- graph --------------------------------------------------------------------------------
    def admit(self, spec: TaskSpec) -> None:
        """Give a task of the plan its record: the one from before when it is the same task with
        the same inputs (a resumed or re-planned run), else a fresh one."""
        rec = self.state.tasks.get(spec.id)
        if rec is not None and rec.spec == spec and self._reusable(rec):
            self._kept.add(spec.id)
            return
        hint = spec.tier_hint
        tier = hint if hint in {t.name for t in self.setup.ladder} else self.setup.ladder[0].name
        assert tier is not None
        self.emit(TaskPlanned(run_id=self.setup.run_id, at=self.now(), spec=spec, tier=tier))

    def _reusable(self, rec: TaskRecord) -> bool:
        deps_kept = all(d in self._kept for d in rec.spec.deps)
        if rec.phase in ("planned", "running"):
            return deps_kept
        if rec.phase in ("succeeded", "finished"):
            return deps_kept and all(
                self.state.tasks[d].phase == "succeeded" for d in rec.spec.deps
            )
        return False

    def add_tasks(self, order: Sequence[TaskId]) -> None:
        """Put tasks (their records exist) into the scheduler, in dependency order."""
        for tid in order:
            rec = self.record(tid)
            ready = self.scheduler.add(
                tid, rec.spec.deps, priority=self.graph.priority[tid], tier=rec.tier
            )
            phase = rec.phase
            if phase == "succeeded" and ready:
                self.scheduler.succeed_reused(tid)
            elif phase in ("failed", "unreviewed", "skipped"):
                if self.scheduler.state(tid) in ("pending", "ready"):
                    self.scheduler.fail(tid)  # ended before: it blocks its dependents again
            elif phase == "merging" and ready:
                self.scheduler.resume_review(tid)
                self.merges.start(tid)  # again: a merge that already landed changes nothing
            elif phase == "finished" and ready and rec.report is not None:
                if self._copy_lost(rec):
                    self._after_add(tid, ready)
                    continue
                self.scheduler.resume_review(tid)
                self.reviews.carry(tid, rec)
            else:
                self._after_add(tid, ready)

    def _copy_lost(self, rec: TaskRecord) -> bool:
        """A finished writing attempt whose copy the stopped run took with it: it runs again."""
        ws = self.setup.workspaces
        if ws is None or not self.setup.is_writing(rec.spec) or ws.base_of(rec.spec.id):
            return False
        self.emit(
            TaskRetried(
                run_id=self.setup.run_id,
                at=self.now(),
                task_id=rec.spec.id,
                tier=rec.tier,
                attempt=rec.attempts,
                trigger="interrupted",
                feedback="the run stopped before review; its workspace copy is gone",
                note=f"attempt {rec.attempts} finished, but the run stopped before it was "
                "reviewed and merged; do the task again",
            )
        )
        return True

    def _after_add(self, tid: TaskId, ready: bool) -> None:
        if ready:
            self.emit(TaskReady(run_id=self.setup.run_id, at=self.now(), task_id=tid))
        elif self.scheduler.state(tid) == "skipped":
            blocked = next(
                d
                for d in self.graph.tasks[tid].deps
                if self.scheduler.state(d) in ("failed", "skipped")
            )
            upstream = self.record(blocked).result
            blocked_by = getattr(upstream, "blocked_by", None)
            self.skip(tid, blocked_by or blocked)  # name the failed root, not the skipped link

    def skip(self, tid: TaskId, blocked_by: TaskId) -> None:
        self.emit(
            TaskSkipped(
                run_id=self.setup.run_id,
                at=self.now(),
                task_id=tid,
                reason=f"dependency {blocked_by} did not succeed",
                blocked_by=blocked_by,
            )
        )

    # -- attempts -----------------------------------------------------------------------------
    def _on_started(self, tid: TaskId) -> None:
        rec = self.record(tid)
        tier = self.setup.ladder[self.setup.tier_index(rec.tier)]
        self.emit(
            TaskStarted(
                run_id=self.setup.run_id,
                at=self.now(),
                task_id=tid,
                attempt=rec.attempts + 1,
                tier=tier.name,
                model=tier.model,
            )
        )

    async def _attempt(self, tid: TaskId) -> Message:
        rec = self.record(tid)
        tier_index = self.setup.tier_index(rec.tier)
        ws = self.setup.workspaces
        workdir = await ws.isolate(tid) if ws and self.setup.is_writing(rec.spec) else None
        request = work_request(
            self.setup,
            rec.spec,
            tier_index=tier_index,
            attempt=rec.attempts,
            feedback=tuple(rec.feedback),
            result_of=lambda d: self.state.tasks[d].result,
            workdir=workdir,
        )
        return await self.stopping.attempt(
            tid, lambda: run_attempt(self.setup, self.worker, self.gateway, request, tier_index)
        )

    # -- messages -----------------------------------------------------------------------------
    def handle(self, message: Message) -> None:
        """Apply one message (only the dispatcher calls it, one at a time)."""
        if isinstance(message, AttemptDone):
            self._attempt_done(message)
        elif isinstance(message, ReviewDone):
            self.reviews.done(message)
        elif isinstance(message, StreamedTask):
            self.streaming.task(message.spec)
        elif isinstance(message, StreamedPlan):
            self.streaming.plan(message)
        elif isinstance(message, MergeReady):
            self.merges.ready(message)
        elif isinstance(message, MergeDone):
            self.merges.done(message)
        elif isinstance(message, AttemptCut):
            self.stopping.cut(message)
        else:
            self.stopping.stop(message.reason, message.detail, cause="budget")
        self.reviews.maybe_review()

    def _attempt_done(self, msg: AttemptDone) -> None:
        tid, outcome = msg.task_id, msg.outcome
        self.scheduler.attempt_finished(tid)
        tier = self.setup.ladder[msg.tier_index].name
        label, detail = describe(outcome)
        done = isinstance(outcome, LeafReport) and outcome.status == "done"
        self.emit(
            AttemptFinished(
                run_id=self.setup.run_id,
                at=self.now(),
                task_id=tid,
                attempt=msg.attempt,
                tier=tier,
                outcome=label,
                turns=getattr(outcome, "turns", 0),
                duration_ms=msg.duration_ms,
                detail=detail[:500],
                summary=outcome.summary if isinstance(outcome, LeafReport) and done else "",
                outputs=dict(outcome.outputs) if isinstance(outcome, LeafReport) and done else {},
                check_output=msg.check_output,
            )
        )
        if isinstance(outcome, LeafReport) and done:
            item = ReviewItem(
                task=self.graph.tasks[tid],
                report=outcome,
                tier=tier,
                attempt=msg.attempt,
                check_output=msg.check_output,
                duration_s=msg.duration_ms / 1000,
            )
            if self.setup.review == "none":
                self.accept(tid)
            else:
                self.queue.add(item)
            return
        self.failure(tid, trigger_of(outcome), detail, error=error_of(outcome, detail))

    def failure(self, tid: TaskId, trigger: Trigger, detail: str, *, error: ErrorInfo) -> None:
        rec = self.record(tid)
        tier_i = self.setup.tier_index(rec.tier)
        decision = self.setup.policy.decide(
            trigger,
            attempts_at_tier=rec.attempts_at_tier,
            tier_index=tier_i,
            ladder_len=len(self.setup.ladder),
        )
        tier = rec.tier
        run_id, now = self.setup.run_id, self.now()
        if isinstance(decision, Retry):
            note = f"attempt {rec.attempts} ({trigger}): {detail}"
            self.emit(
                TaskRetried(
                    run_id=run_id,
                    at=now,
                    task_id=tid,
                    tier=tier,
                    attempt=rec.attempts,
                    trigger=trigger,
                    feedback=detail[:500],
                    note=note,
                )
            )
            self.scheduler.retry(tid)
        elif isinstance(decision, Escalate):
            up = self.setup.ladder[decision.tier_index]
            self.emit(
                EscalationDecided(
                    run_id=run_id,
                    at=now,
                    task_id=tid,
                    trigger=trigger,
                    from_tier=tier,
                    to_tier=up.name,
                    note=f"a {tier}-tier attempt failed ({trigger}): {detail}",
                )
            )
            self.scheduler.retry(tid, tier=up.name)
        else:
            self.give_up(tid, trigger, decision, error)

    def give_up(self, tid: TaskId, trigger: Trigger, decision: GiveUp, error: ErrorInfo) -> None:
        rec = self.record(tid)
        run_id, now = self.setup.run_id, self.now()
        self.emit(
            EscalationDecided(
                run_id=run_id,
                at=now,
                task_id=tid,
                trigger=trigger,
                from_tier=rec.tier,
                to_tier=None,
            )
        )
        self.emit(
            TaskFailed(
                run_id=run_id,
                at=now,
                task_id=tid,
                tier=rec.tier,
                attempts=rec.attempts,
                error_type=error.type,
                message=error.message,
                retryable=error.retryable,
                reason=decision.reason,
                cost_usd=self.task_cost(tid),
            )
        )
        self._skip_all(self.scheduler.fail(tid))

    def _skip_all(self, notices: Iterable[SkipNotice]) -> None:
        for notice in notices:
            self.skip(notice.task_id, notice.blocked_by)

    def accept(self, tid: TaskId) -> None:
        """The task's work is accepted: a writing task's copy is merged first, then it succeeds."""
        if self.setup.is_writing(self.record(tid).spec):
            self.merges.start(tid)
        else:
            self.accept_now(tid)

    def accept_now(self, tid: TaskId) -> None:
        rec = self.record(tid)
        report = rec.report
        assert report is not None
        self.emit(
            TaskSucceeded(
                run_id=self.setup.run_id,
                at=self.now(),
                task_id=tid,
                tier=report.tier,
                attempts=rec.attempts,
                summary=report.summary[:300],
                cost_usd=self.task_cost(tid),
            )
        )
        for ready in self.scheduler.succeed(tid):
            self.emit(TaskReady(run_id=self.setup.run_id, at=self.now(), task_id=ready))

    def unreview(self, tid: TaskId, reason: str, *, resumable: bool = False) -> None:
        """End a finished attempt as `Unreviewed`: its work is kept, its dependents skipped."""
        self.emit(
            TaskUnreviewed(
                run_id=self.setup.run_id,
                at=self.now(),
                task_id=tid,
                reason=reason[:500],
                resumable=resumable,
            )
        )
        if not resumable:  # else the run is stopping: its dependents end skipped, resumably
            self._skip_all(self.scheduler.fail(tid))

    def plan_validated(self, graph: PlanGraph, *, replan: bool = False) -> None:
        self.emit(
            PlanValidated(
                run_id=self.setup.run_id,
                at=self.now(),
                task_ids=graph.order,
                edges=graph.edges,
                replan=replan,
                rationale=graph.plan.rationale,
            )
        )

    # -- end ----------------------------------------------------------------------------------
    def close_reviews(self, reason: str, *, resumable: bool) -> None:
        """Work still waiting for a verdict when the run stops ends unreviewed, never accepted."""
        for item in self.queue.drain():
            if self.record(item.task.id).phase == "finished":
                self.unreview(item.task.id, reason, resumable=resumable)
