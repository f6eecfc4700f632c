"""One run's task lifecycle: attempts → checks → review → accept / retry / escalate / replan / fail.

The dispatcher calls `handle` with each message, one at a time and never across an await; it is the
only writer of the run's state, so the logic is sequential even though attempts, reviews and the
streaming planner run concurrently.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import anyio

from .errors import (
    BudgetExceededError,
    ModelAPIError,
    ModelBehaviorError,
    ModelError,
    ModelOutageError,
    ModelTimeoutError,
    PlanValidationError,
)
from .escalation import Escalate, EscalationPolicy, GiveUp, Retry, Trigger
from .events import (
    AttemptFinished,
    EscalationDecided,
    EventSink,
    GraphReplanned,
    PlanValidated,
    ReviewDecided,
    TaskFailed,
    TaskReady,
    TaskRetried,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
    TaskUnreviewed,
)
from .executor import Dispatcher
from .gateway import Gateway, waits_excluded
from .llm import ToolDefinition
from .models import (
    ErrorInfo,
    Failed,
    Limits,
    Plan,
    RunId,
    Skipped,
    Succeeded,
    TaskId,
    TaskResult,
    TaskSpec,
    TierSpec,
    Unreviewed,
    Usage,
)
from .plan import Estimates, PlanGraph, extend_graph, replan, validate_plan
from .review import ReviewQueue, match_verdicts
from .roles import (
    AttemptError,
    DepOutput,
    LeafReport,
    ReplanTask,
    Reviewer,
    ReviewItem,
    ReviewRequest,
    Verdict,
    Worker,
    WorkOutcome,
    WorkRequest,
)
from .scheduler import Scheduler
from .toolkit import ApprovalCallback, CheckRunner, Tool


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
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamedTask:
    """A task the streaming planner has finished writing."""

    spec: TaskSpec


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamedPlan:
    """The streaming planner is done: the whole plan, or why there is none."""

    plan: Plan | None
    error: str | None = None


Message = AttemptDone | ReviewDone | BudgetHit | StreamedTask | StreamedPlan


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


class Supervisor:
    """Owns results, attempt counters and tiers of one run; drives a `Dispatcher`."""

    def __init__(
        self,
        setup: RunSetup,
        graph: PlanGraph,
        *,
        worker: Worker,
        reviewer: Reviewer,
        gateway: Gateway,
        sink: EventSink,
        reused: Mapping[TaskId, Succeeded] = {},
        carried: Sequence[ReviewItem] = (),
    ) -> None:
        self.s = setup
        self.graph = graph
        self._worker, self._reviewer, self._gateway, self._sink = worker, reviewer, gateway, sink
        limits = setup.limits
        self.scheduler = Scheduler(
            max_parallel=limits.max_parallel, tier_caps=dict(limits.per_tier_parallel)
        )
        self.results: dict[TaskId, TaskResult] = {}
        self.tier_index: dict[TaskId, int] = {}
        self.attempts: dict[TaskId, int] = {}
        self.attempts_at_tier: dict[TaskId, int] = {}
        self.feedback: dict[TaskId, list[str]] = {}
        self.rejections: dict[TaskId, int] = {}
        self.review_failures: dict[TaskId, int] = {}
        self.escalations = 0
        self.replans = 0
        self.budget_note: str | None = None
        self._queue = ReviewQueue()
        self._buffer: list[TaskSpec] = []
        self.plan_complete = bool(graph.order)
        self.stream_error: str | None = None
        self.rejected_plan: Plan | None = None
        self.dispatcher: Dispatcher[Message] = Dispatcher(
            self.scheduler,
            start_task=self._attempt,
            on_message=self.handle,
            on_started=self._on_started,
        )
        self._add_tasks(graph.order, reused)
        for item in carried:
            if self.scheduler.state(item.task.id) == "ready":
                self.attempts[item.task.id] = item.attempt
                self.scheduler.resume_review(item.task.id)
                self._queue.add(item)
        self._maybe_review()

    def unreviewed(self) -> tuple[ReviewItem, ...]:
        """Finished attempts still waiting for review (carried over when a plan is repaired)."""
        return tuple(self._queue.pending)

    # -- graph --------------------------------------------------------------------------------
    def _add_tasks(self, order: Sequence[TaskId], reused: Mapping[TaskId, Succeeded]) -> None:
        names = [t.name for t in self.s.ladder]
        for tid in order:
            spec = self.graph.tasks[tid]
            start = names.index(spec.tier_hint) if spec.tier_hint in names else 0
            self.tier_index[tid] = start
            self.attempts.setdefault(tid, 0)
            self.attempts_at_tier[tid] = 0
            ready = self.scheduler.add(
                tid, spec.deps, priority=self.graph.priority[tid], tier=names[start]
            )
            if tid in reused:
                self.results[tid] = reused[tid]
                self.scheduler.succeed_reused(tid)
                continue
            self._after_add(tid, ready)

    def _after_add(self, tid: TaskId, ready: bool) -> None:
        if ready:
            self._emit(TaskReady, task_id=tid)
        elif self.scheduler.state(tid) == "skipped":
            blocked = next(
                d
                for d in self.graph.tasks[tid].deps
                if self.scheduler.state(d) in ("failed", "skipped")
            )
            upstream = self.results.get(blocked)
            if isinstance(upstream, Skipped) and upstream.blocked_by is not None:
                blocked = upstream.blocked_by  # name the failed root, not the skipped link
            self._skip(tid, blocked)

    def _emit(self, cls: type, **fields: object) -> None:
        self._sink.emit(cls(run_id=self.s.run_id, at=self.s.clock(), **fields))

    # -- attempts -----------------------------------------------------------------------------
    def _on_started(self, tid: TaskId) -> None:
        self.attempts[tid] += 1
        self.attempts_at_tier[tid] += 1
        tier = self.s.ladder[self.tier_index[tid]]
        self._emit(
            TaskStarted, task_id=tid, attempt=self.attempts[tid], tier=tier.name, model=tier.model
        )

    async def _attempt(self, tid: TaskId) -> Message:
        tier_index, attempt = self.tier_index[tid], self.attempts[tid]
        request = self._work_request(tid, tier_index, attempt)
        started = time.perf_counter()
        check_output: str | None = None
        try:
            with (
                anyio.fail_after(self.s.limits.task_timeout_s) as deadline,
                waits_excluded(deadline),
            ):
                outcome: WorkOutcome | Crash = await self._worker.work(request, self._gateway)
                if isinstance(outcome, LeafReport) and outcome.status == "done":
                    outcome, check_output = await self._check(request.task, outcome)
        except TimeoutError:
            outcome = Crash(
                trigger="timeout",
                error=ErrorInfo(
                    type="TimeoutError",
                    message=f"attempt exceeded {self.s.limits.task_timeout_s}s",
                    retryable=True,
                ),
            )
        except BudgetExceededError as exc:
            return BudgetHit(message=str(exc))
        except ModelError as exc:
            outcome = _crash(exc)
        return AttemptDone(
            task_id=tid,
            tier_index=tier_index,
            attempt=attempt,
            outcome=outcome,
            check_output=check_output,
            duration_ms=(time.perf_counter() - started) * 1000,
        )

    async def _check(
        self, task: TaskSpec, report: LeafReport
    ) -> tuple[WorkOutcome | Crash, str | None]:
        if task.check is None or self.s.check_runner is None:
            return report, None
        result = await self.s.check_runner(
            task.check.command, self.s.workdir, task.check.timeout_s, self.s.run_dir
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

    def _work_request(self, tid: TaskId, tier_index: int, attempt: int) -> WorkRequest:
        spec = self.graph.tasks[tid]
        return WorkRequest(
            run_id=self.s.run_id,
            goal=self.s.goal,
            task=spec,
            tier=self.s.ladder[tier_index],
            attempt=attempt,
            inputs=tuple(self._dep_output(d) for d in spec.deps),
            feedback=tuple(self.feedback.get(tid, ())),
            tools=tuple(self.s.tools[n] for n in spec.tools if n in self.s.tools),
            workdir=self.s.workdir,
            run_dir=self.s.run_dir,
            max_turns=self.s.limits.max_turns,
            approve=self.s.approve,
        )

    def _dep_output(self, dep: TaskId) -> DepOutput:
        result = self.results[dep]
        assert isinstance(result, Succeeded)
        budget = self.s.limits.max_dep_output_chars
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
        return DepOutput(task_id=dep, summary=summary, outputs=outputs, truncated=truncated)

    # -- messages -----------------------------------------------------------------------------
    def handle(self, message: Message) -> None:
        """Apply one message to the run's state (only the dispatcher calls it, one at a time)."""
        if isinstance(message, AttemptDone):
            self._attempt_done(message)
        elif isinstance(message, ReviewDone):
            self._review_done(message)
        elif isinstance(message, StreamedTask):
            self._streamed_task(message.spec)
        elif isinstance(message, StreamedPlan):
            self._streamed_plan(message)
        else:
            self.budget_note = message.message
            self.dispatcher.stop()
            for tid in self.scheduler.cancel_pending():
                self.results[tid] = Skipped(task_id=tid, reason=f"budget: {message.message}")
        self._maybe_review()

    def _attempt_done(self, msg: AttemptDone) -> None:
        tid, outcome = msg.task_id, msg.outcome
        self.scheduler.attempt_finished(tid)
        tier = self.s.ladder[msg.tier_index].name
        label, detail = _describe(outcome)
        self._emit(
            AttemptFinished,
            task_id=tid,
            attempt=msg.attempt,
            tier=tier,
            outcome=label,
            turns=getattr(outcome, "turns", 0),
            duration_ms=msg.duration_ms,
            detail=detail[:500],
        )
        if isinstance(outcome, LeafReport) and outcome.status == "done":
            item = ReviewItem(
                task=self.graph.tasks[tid],
                report=outcome,
                tier=tier,
                attempt=msg.attempt,
                check_output=msg.check_output,
                duration_s=msg.duration_ms / 1000,
            )
            if self.s.review == "none":
                self._accept(item)
            else:
                self._queue.add(item)
            return
        trigger: Trigger
        if isinstance(outcome, LeafReport):
            trigger = "ambiguous" if outcome.status == "ambiguous" else "self_failed"
        elif isinstance(outcome, AttemptError):
            trigger = outcome.trigger
        else:
            trigger = outcome.trigger
        self._failure(tid, trigger, detail, error=_error_of(outcome, detail))

    def _failure(self, tid: TaskId, trigger: Trigger, detail: str, *, error: ErrorInfo) -> None:
        tier_i = self.tier_index[tid]
        decision = self.s.policy.decide(
            trigger,
            attempts_at_tier=self.attempts_at_tier[tid],
            tier_index=tier_i,
            ladder_len=len(self.s.ladder),
        )
        tier = self.s.ladder[tier_i].name
        if isinstance(decision, Retry):
            self.feedback.setdefault(tid, []).append(
                f"attempt {self.attempts[tid]} ({trigger}): {detail}"
            )
            self._emit(
                TaskRetried,
                task_id=tid,
                tier=tier,
                attempt=self.attempts[tid],
                trigger=trigger,
                feedback=detail[:500],
            )
            self.scheduler.retry(tid)
        elif isinstance(decision, Escalate):
            up = self.s.ladder[decision.tier_index]
            self.feedback.setdefault(tid, []).append(
                f"a {tier}-tier attempt failed ({trigger}): {detail}"
            )
            self.escalations += 1
            self.tier_index[tid] = decision.tier_index
            self.attempts_at_tier[tid] = 0
            self._emit(
                EscalationDecided, task_id=tid, trigger=trigger, from_tier=tier, to_tier=up.name
            )
            self.scheduler.retry(tid, tier=up.name)
        else:
            self._give_up(tid, trigger, decision, error)

    def _give_up(self, tid: TaskId, trigger: Trigger, decision: GiveUp, error: ErrorInfo) -> None:
        tier = self.s.ladder[self.tier_index[tid]].name
        self._emit(EscalationDecided, task_id=tid, trigger=trigger, from_tier=tier, to_tier=None)
        self.results[tid] = Failed(
            task_id=tid,
            error=error,
            tier=tier,
            attempts=self.attempts[tid],
            usage=self._gateway.ledger.by_task.get(tid) or _zero(),
        )
        self._emit(
            TaskFailed,
            task_id=tid,
            tier=tier,
            attempts=self.attempts[tid],
            error_type=error.type,
            message=f"{error.message[:400]} ({decision.reason})",
        )
        for notice in self.scheduler.fail(tid):
            self._skip(notice.task_id, notice.blocked_by)

    def _skip(self, tid: TaskId, blocked_by: TaskId) -> None:
        reason = f"dependency {blocked_by} did not succeed"
        self.results[tid] = Skipped(task_id=tid, reason=reason, blocked_by=blocked_by)
        self._emit(TaskSkipped, task_id=tid, reason=reason, blocked_by=blocked_by)

    def _accept(self, item: ReviewItem, feedback: str = "") -> None:
        tid = item.task.id
        self.results[tid] = Succeeded(
            task_id=tid,
            summary=item.report.summary,
            outputs=dict(item.report.outputs),
            tier=item.tier,
            attempts=self.attempts[tid],
            usage=self._gateway.ledger.by_task.get(tid) or _zero(),
            duration_s=item.duration_s,
        )
        self._emit(
            TaskSucceeded,
            task_id=tid,
            tier=item.tier,
            attempts=self.attempts[tid],
            summary=item.report.summary[:300],
        )
        for ready in self.scheduler.succeed(tid):
            self._emit(TaskReady, task_id=ready)

    # -- review -------------------------------------------------------------------------------
    def _maybe_review(self) -> None:
        if not self.plan_complete:
            return  # the reviewer judges against the whole plan, and replans need it
        batch = self._queue.take()
        if not batch:
            return
        request = ReviewRequest(
            goal=self.s.goal,
            plan=self.graph.plan,
            items=batch,
            model=self.s.reviewer_model,
            tools=self.s.tool_catalog,
        )

        async def review(post: Callable[[Message], None]) -> Message:
            try:
                verdicts = await self._reviewer.review(request, self._gateway)
            except BudgetExceededError as exc:
                post(BudgetHit(message=str(exc)))
                return _review_failed(batch, "budget", exc)
            except ModelOutageError as exc:
                return _review_failed(batch, "outage", exc)
            except ModelError as exc:
                return _review_failed(batch, "error", exc)
            return ReviewDone(items=batch, verdicts=verdicts)

        self.dispatcher.spawn(review)

    def _review_done(self, msg: ReviewDone) -> None:
        self._queue.done()
        if msg.failure is not None:
            self._review_failed(msg.items, msg.failure, msg.error or "")
            return
        judged, missing = match_verdicts(msg.items, msg.verdicts)
        if missing:
            self._review_failed(missing, "error", "the reviewer gave no verdict for this task")
        for item, verdict in judged:
            tid = item.task.id
            self._emit(
                ReviewDecided, task_id=tid, verdict=verdict.kind, feedback=verdict.feedback[:500]
            )
            if verdict.kind == "accept":
                self._accept(item, verdict.feedback)
            elif verdict.kind == "replan" and self.replans < self.s.limits.max_replans:
                self._replan(item, verdict)
            elif verdict.kind == "escalate":
                self._failure(
                    tid,
                    "review_escalate",
                    verdict.feedback,
                    error=ErrorInfo(type="ReviewEscalated", message=verdict.feedback),
                )
            else:
                self._rejected(tid, verdict.feedback)

    def _review_failed(
        self, items: Sequence[ReviewItem], failure: ReviewFailure, error: str
    ) -> None:
        """No verdict: review again, unless the failure is final; never accept unjudged work."""
        again: list[ReviewItem] = []
        for item in items:
            tid = item.task.id
            count = self.review_failures[tid] = self.review_failures.get(tid, 0) + 1
            if failure == "error" and count < self.s.limits.max_review_failures:
                again.append(item)
            else:
                self.unreview(item, f"reviewer unavailable ({failure}): {error}")
        self._queue.retry(again)

    def unreview(self, item: ReviewItem, reason: str) -> None:
        """End a finished attempt as `Unreviewed`: its work is kept, its dependents skipped."""
        tid = item.task.id
        self.results[tid] = Unreviewed(
            task_id=tid,
            reason=reason,
            summary=item.report.summary,
            outputs=dict(item.report.outputs),
            tier=item.tier,
            attempts=self.attempts[tid],
            usage=self._gateway.ledger.by_task.get(tid) or _zero(),
        )
        self._emit(TaskUnreviewed, task_id=tid, reason=reason[:500])
        for notice in self.scheduler.fail(tid):
            self._skip(notice.task_id, notice.blocked_by)

    def _rejected(self, tid: TaskId, feedback: str) -> None:
        self.rejections[tid] = self.rejections.get(tid, 0) + 1
        error = ErrorInfo(type="ReviewRejected", message=feedback)
        if self.rejections[tid] > self.s.limits.max_reviews_per_task:
            self._give_up(
                tid, "review_rejected", GiveUp(reason="too many review rejections"), error
            )
            return
        self._failure(tid, "review_rejected", f"reviewer: {feedback}", error=error)

    def _replan(self, item: ReviewItem, verdict: ReplanTask) -> None:
        tid = item.task.id
        try:
            graph = replan(
                self.graph,
                replace=None if verdict.keep else tid,
                add=verdict.new_tasks,
                known_tools=self.s.tools.keys(),
                known_tiers=[t.name for t in self.s.ladder],
                estimates=self.s.estimates,
            )
        except PlanValidationError as exc:
            self._rejected(tid, f"{verdict.feedback} (the proposed replan was invalid: {exc})")
            return
        self.replans += 1
        old = self.graph
        self.graph = graph
        if verdict.keep:
            self._accept(item)
        else:
            self.scheduler.replace(tid)
        added = [t for t in graph.order if t not in old.tasks]
        self._add_tasks(added, {})
        for dependent in old.dependents.get(tid, ()):
            if not verdict.keep and self.scheduler.state(dependent) in ("pending", "ready"):
                for notice in self.scheduler.rewire(dependent, graph.tasks[dependent].deps):
                    self._skip(notice.task_id, notice.blocked_by)
        self._emit(GraphReplanned, replaced=() if verdict.keep else (tid,), added=tuple(added))
        self._emit(PlanValidated, task_ids=tuple(graph.order), edges=graph.edges, replan=True)

    # -- streamed plans -----------------------------------------------------------------------
    def _streamed_task(self, spec: TaskSpec) -> None:
        self._buffer.append(spec)
        progress = True
        while progress:
            progress = False
            for pending in list(self._buffer):
                if all(d in self.graph.tasks for d in pending.deps):
                    self._buffer.remove(pending)
                    progress = True
                    try:
                        self.graph = extend_graph(
                            self.graph,
                            pending,
                            known_tools=self.s.tools.keys(),
                            known_tiers=[t.name for t in self.s.ladder],
                            estimates=self.s.estimates,
                        )
                    except PlanValidationError:
                        continue  # the final plan's validation reports it
                    self._add_tasks([pending.id], {})

    def _streamed_plan(self, msg: StreamedPlan) -> None:
        self.stream_error = msg.error
        if msg.plan is None:
            self.dispatcher.stop()
            return
        try:
            graph = validate_plan(
                msg.plan,
                known_tools=self.s.tools.keys(),
                known_tiers=[t.name for t in self.s.ladder],
                estimates=self.s.estimates,
            )
        except PlanValidationError as exc:
            self.stream_error, self.rejected_plan = str(exc), msg.plan
            self.dispatcher.stop()
            return
        changed = [t for t in self.graph.order if graph.tasks.get(t) != self.graph.tasks[t]]
        if changed:
            self.stream_error = f"streamed tasks changed in the final plan: {', '.join(changed)}"
            self.rejected_plan = msg.plan
            self.dispatcher.stop()
            return
        self._buffer.clear()
        added = [t for t in graph.order if t not in self.graph.tasks]
        self.graph = graph
        for tid in self.scheduler.states():
            if tid in graph.priority:
                self.scheduler.set_priority(tid, graph.priority[tid])
        self._add_tasks(added, {})
        self.plan_complete = True

    # -- end ----------------------------------------------------------------------------------
    def close_reviews(self, reason: str) -> None:
        """Work still waiting for a verdict when the run stops ends unreviewed, never accepted."""
        for item in self._queue.drain():
            if item.task.id not in self.results:
                self.unreview(item, reason)

    def finalize_cancelled(self, reason: str) -> None:
        """Mark everything not terminal as skipped (run cancelled); running work was cancelled."""
        self.close_reviews(f"not reviewed: {reason}")
        for tid, state in list(self.scheduler.states().items()):
            if tid not in self.results and state != "replaced":
                self.results[tid] = Skipped(task_id=tid, reason=reason)


def _zero() -> Usage:
    return Usage()


def _review_failed(
    batch: tuple[ReviewItem, ...], failure: ReviewFailure, exc: Exception
) -> ReviewDone:
    return ReviewDone(
        items=batch, verdicts=(), error=f"{type(exc).__name__}: {exc}", failure=failure
    )


def _crash(exc: ModelError) -> Crash:
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


def _describe(outcome: WorkOutcome | Crash) -> tuple[str, str]:
    if isinstance(outcome, LeafReport):
        return outcome.status, outcome.summary
    if isinstance(outcome, AttemptError):
        return outcome.trigger, outcome.detail
    return outcome.trigger, outcome.error.message


def _error_of(outcome: WorkOutcome | Crash, detail: str) -> ErrorInfo:
    if isinstance(outcome, Crash):
        return outcome.error
    if isinstance(outcome, AttemptError):
        return ErrorInfo(type=outcome.trigger, message=detail)
    return ErrorInfo(type=f"executor_{outcome.status}", message=detail)
