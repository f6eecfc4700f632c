"""The supervisor's review side: batching finished attempts to the reviewer, applying verdicts,
replanning part of the graph. Decisions are events; the fold keeps the counts they depend on."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .attempts import BudgetHit, Message, ReviewDone, ReviewFailure
from .errors import BudgetExceededError, ModelError, ModelOutageError, PlanValidationError
from .escalation import GiveUp
from .events import GraphReplanned, ReviewDecided, ReviewFailed
from .fold import TaskRecord
from .models import ErrorInfo, TaskId, TaskSpec
from .plan import replan
from .review import match_verdicts
from .roles import LeafReport, ReplanTask, ReviewItem, ReviewRequest

if TYPE_CHECKING:
    from .supervisor import Supervisor


class Reviews:
    """Owns the review queue's traffic for one supervisor."""

    def __init__(self, sup: Supervisor) -> None:
        self._sup = sup

    def carry(self, tid: TaskId, rec: TaskRecord) -> None:
        """A finished attempt from before (resumed or re-planned) goes to review again."""
        self._sup.queue.add(review_item(rec.spec, rec))

    def maybe_review(self) -> None:
        sup = self._sup
        if not sup.plan_complete:
            return  # the reviewer judges against the whole plan, and replans need it
        batch = sup.queue.take()
        if not batch:
            return
        request = ReviewRequest(
            goal=sup.setup.goal,
            plan=sup.graph.plan,
            items=batch,
            model=sup.setup.reviewer_model,
            tools=sup.setup.tool_catalog,
        )
        reviewer, gateway = sup.reviewer, sup.gateway

        async def review(post: Callable[[Message], None]) -> Message:
            try:
                verdicts = await reviewer.review(request, gateway)
            except BudgetExceededError as exc:
                if exc.scope == "run":  # else only the reviewer's tier is spent: the run goes on
                    post(BudgetHit(reason=exc.reason, detail=str(exc)))
                return _failed(batch, "budget", exc)
            except ModelOutageError as exc:
                return _failed(batch, "outage", exc)
            except ModelError as exc:
                return _failed(batch, "error", exc)
            return ReviewDone(items=batch, verdicts=verdicts)

        sup.dispatcher.spawn(review)

    def done(self, msg: ReviewDone) -> None:
        sup = self._sup
        sup.queue.done()
        if msg.failure is not None:
            self._review_failed(msg.items, msg.failure, msg.error or "")
            return
        judged, missing = match_verdicts(msg.items, msg.verdicts)
        if missing:
            self._review_failed(missing, "error", "the reviewer gave no verdict for this task")
        for item, verdict in judged:
            tid = item.task.id
            if sup.record(tid).phase != "finished":
                continue  # ended meanwhile (the run is stopping)
            sup.emit(
                ReviewDecided(
                    run_id=sup.setup.run_id,
                    at=sup.now(),
                    task_id=tid,
                    verdict=verdict.kind,
                    feedback=verdict.feedback[:500],
                )
            )
            if verdict.kind == "accept":
                sup.accept(tid)
            elif verdict.kind == "replan" and sup.state.replans < sup.setup.limits.max_replans:
                self._replan(item, verdict)
            elif verdict.kind == "escalate":
                sup.failure(
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
        sup = self._sup
        live = [i for i in items if sup.record(i.task.id).phase == "finished"]
        if not live:
            return
        sup.emit(
            ReviewFailed(
                run_id=sup.setup.run_id,
                at=sup.now(),
                task_ids=tuple(i.task.id for i in live),
                failure=failure,
                error=error[:500],
            )
        )
        again: list[ReviewItem] = []
        for item in live:
            count = sup.record(item.task.id).review_failures
            if failure == "error" and count < sup.setup.limits.max_review_failures:
                again.append(item)
            else:  # a budget or an outage may be over when the run is resumed
                sup.unreview(item.task.id, self._why(failure, error), resumable=failure != "error")
        sup.queue.retry(again)

    def _why(self, failure: ReviewFailure, error: str) -> str:
        """An unreviewed task's reason: the run's stop first when a run budget refused the call."""
        state = self._sup.state
        if failure == "budget" and state.stop_reason.startswith("budget"):
            return f"{state.stop_reason} — not reviewed: {error}"
        return f"reviewer unavailable ({failure}): {error}"

    def _rejected(self, tid: TaskId, feedback: str) -> None:
        sup = self._sup
        error = ErrorInfo(type="ReviewRejected", message=feedback)
        if sup.record(tid).rejections + 1 > sup.setup.limits.max_reviews_per_task:
            sup.give_up(tid, "review_rejected", GiveUp(reason="too many review rejections"), error)
            return
        sup.failure(tid, "review_rejected", f"reviewer: {feedback}", error=error)

    def _replan(self, item: ReviewItem, verdict: ReplanTask) -> None:
        sup = self._sup
        tid = item.task.id
        try:
            graph = replan(
                sup.graph,
                replace=None if verdict.keep else tid,
                add=verdict.new_tasks,
                known_tools=sup.setup.tools.keys(),
                known_tiers=[t.name for t in sup.setup.ladder],
                estimates=sup.setup.estimates,
            )
        except PlanValidationError as exc:
            self._rejected(tid, f"{verdict.feedback} (the proposed replan was invalid: {exc})")
            return
        old = sup.graph
        sup.graph = graph
        if verdict.keep:
            sup.accept(tid)
        else:
            sup.scheduler.replace(tid)
        added = [t for t in graph.order if t not in old.tasks]
        for new in added:
            sup.admit(graph.tasks[new])
        rewired = {
            d: graph.tasks[d].deps
            for d in old.dependents.get(tid, ())
            if not verdict.keep and graph.tasks[d].deps != old.tasks[d].deps
        }
        sup.emit(
            GraphReplanned(
                run_id=sup.setup.run_id,
                at=sup.now(),
                replaced=() if verdict.keep else (tid,),
                added=tuple(added),
                rewired=rewired,
            )
        )
        sup.plan_validated(graph, replan=True)
        sup.add_tasks(added)
        for dependent in old.dependents.get(tid, ()):
            if not verdict.keep and sup.scheduler.state(dependent) in ("pending", "ready"):
                for notice in sup.scheduler.rewire(dependent, graph.tasks[dependent].deps):
                    sup.skip(notice.task_id, notice.blocked_by)


def _failed(batch: tuple[ReviewItem, ...], failure: ReviewFailure, exc: Exception) -> ReviewDone:
    return ReviewDone(
        items=batch, verdicts=(), error=f"{type(exc).__name__}: {exc}", failure=failure
    )


def review_item(spec: TaskSpec, rec: TaskRecord) -> ReviewItem:
    """A finished attempt (from the state) as the reviewer sees it."""
    report = rec.report
    assert report is not None
    return ReviewItem(
        task=spec,
        report=LeafReport(status="done", summary=report.summary, outputs=dict(report.outputs)),
        tier=report.tier,
        attempt=report.attempt,
        check_output=report.check_output,
        duration_s=report.duration_s,
    )
