"""Stopping a run early: a run budget spent, a cancel, a refused plan.

Dispatch stops at once and tasks not started end skipped, naming the stop. Attempts already
running may finish within `Limits.stop_grace_s` (each still fits its own reservations); past it
they are cancelled and their tasks end skipped too. Every such skip is resumable.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio

from .attempts import AttemptCut, Message
from .events import AttemptFinished, DispatchStopped, SkipCause, TaskSkipped
from .models import StopReason, TaskId

if TYPE_CHECKING:
    from .supervisor import Supervisor


class Stopping:
    """The supervisor's stop: reason, grace for running attempts, and the skips it leaves."""

    def __init__(self, sup: Supervisor) -> None:
        self._sup = sup
        self._running: dict[TaskId, anyio.CancelScope] = {}
        self._drained: anyio.Event | None = None
        """Set when the last running attempt ends after a stop (the grace ends early)."""

    @property
    def reason(self) -> str:
        """The stop as every skipped task names it: the typed reason, then the detail."""
        state = self._sup.state
        return (
            f"{state.stop_reason} — {state.stop_detail}" if state.stop_detail else state.stop_reason
        )

    async def attempt(self, tid: TaskId, work: Callable[[], Awaitable[Message]]) -> Message:
        """Run an attempt that a stop's grace can cut short."""
        scope = anyio.CancelScope()
        self._running[tid] = scope
        started = time.perf_counter()
        try:
            with scope:
                return await work()
            return AttemptCut(task_id=tid, duration_ms=(time.perf_counter() - started) * 1000)
        finally:
            del self._running[tid]
            if not self._running and self._drained is not None:
                self._drained.set()

    def stop(self, reason: StopReason, detail: str, *, cause: SkipCause) -> None:
        """Start nothing new; tasks not started end skipped; running ones get the grace."""
        sup = self._sup
        if sup.state.stop_reason:
            return  # already stopping: the first reason stands
        sup.emit(
            DispatchStopped(run_id=sup.setup.run_id, at=sup.now(), reason=reason, detail=detail)
        )
        sup.dispatcher.stop()
        for tid in sup.scheduler.cancel_pending():
            self.skip(tid, cause)
        if self._running:
            self._drained = anyio.Event()
            sup.dispatcher.spawn(self._grace)

    async def _grace(self, post: Callable[[Message], None]) -> None:
        grace = self._sup.setup.limits.stop_grace_s
        drained = self._drained
        assert drained is not None
        with anyio.move_on_after(grace if grace >= 0 else math.inf):
            await drained.wait()
        for scope in self._running.values():
            scope.cancel()

    def cut_running(self) -> None:
        """Cancel every running attempt now (the streamed plan they came from was rejected)."""
        for scope in self._running.values():
            scope.cancel()

    def cut(self, msg: AttemptCut) -> None:
        """A cut attempt ends: skipped by the run's stop, or (its streamed plan was rejected)
        back to planned, for the repaired plan to adopt if it has the same task, else drop."""
        sup = self._sup
        tid = msg.task_id
        sup.scheduler.attempt_finished(tid)
        if sup.state.stop_reason:
            self.skip(tid, _cause(sup.state.stop_reason))
            return
        rec = sup.record(tid)
        sup.emit(
            AttemptFinished(
                run_id=sup.setup.run_id,
                at=sup.now(),
                task_id=tid,
                attempt=rec.attempts,
                tier=rec.tier,
                outcome="cancelled",
                turns=0,
                duration_ms=msg.duration_ms,
                detail="cancelled: the streamed plan it came from was rejected",
            )
        )

    def skip(self, tid: TaskId, cause: SkipCause, reason: str | None = None) -> None:
        """The run's stop, not a dependency, ends the task: a resumed run starts it again."""
        sup = self._sup
        sup.emit(
            TaskSkipped(
                run_id=sup.setup.run_id,
                at=sup.now(),
                task_id=tid,
                reason=reason or self.reason,
                blocked_by=None,
                cause=cause,
            )
        )

    def close(self) -> None:
        """After a stop, tasks that did not end (an attempt the budget refused, a retry decided
        meanwhile) end skipped with the stop's reason; a resumed run starts them again."""
        sup = self._sup
        cause = _cause(sup.state.stop_reason)
        for tid, rec in list(sup.state.tasks.items()):
            if rec.phase in ("planned", "running"):
                self.skip(tid, cause)

    def cancelled(self, reason: str) -> None:
        """Skip everything not terminal (the run was cancelled); running work was cancelled."""
        sup = self._sup
        sup.emit(
            DispatchStopped(
                run_id=sup.setup.run_id, at=sup.now(), reason="cancelled", detail=reason
            )
        )
        sup.queue.drain()
        for tid, rec in list(sup.state.tasks.items()):
            if rec.phase == "finished":
                sup.unreview(tid, f"not reviewed: {reason}", resumable=True)
            elif rec.result is None and rec.phase != "merging":  # a resumed run merges it
                self.skip(tid, "cancelled", reason)


def _cause(reason: str) -> SkipCause:
    if reason.startswith("budget"):
        return "budget"
    return "cancelled" if reason == "cancelled" else "stopped"
