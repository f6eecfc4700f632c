"""Human-readable rendering of a run: the DAG with statuses, the answer, usage and escalations."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from .events import Event, ModelCallRetried, PlanValidated
from .models import Failed, RunResult, Skipped, Succeeded, TaskId, Unreviewed
from .progress import Progress, one_line
from .show import cost_text, duration_text


def render_result(result: RunResult) -> str:
    """The DAG's tasks with their statuses, then the answer and the accounting."""
    lines = [f"run {result.run_id}: {result.status}"]
    if result.plan is not None:
        lines.append("tasks:")
        for task in result.plan.tasks:
            r = result.results.get(task.id)
            deps = f" <- {', '.join(task.deps)}" if task.deps else ""
            match r:
                case Succeeded():
                    status = f"succeeded at {r.tier} ({r.attempts} attempt(s))"
                case Failed():
                    status = f"FAILED at {r.tier}: {r.error.message[:120]}"
                case Skipped():
                    status = f"skipped: {r.reason}"
                case Unreviewed():
                    status = f"UNREVIEWED (work kept, not accepted): {r.reason[:120]}"
                case None:
                    status = "not run"
            lines.append(f"  [{task.id}]{deps} {status}")
    lines.append("answer:")
    lines.append("  " + (result.answer.strip().replace("\n", "\n  ") or "(none)"))
    tokens = result.usage.tokens
    cost = f"${result.usage.cost_usd:.6f}"
    if result.usage.unpriced_models:
        cost += f" (+ unpriced: {', '.join(result.usage.unpriced_models)})"
    lines.append(
        f"usage: {tokens.input_tokens} in ({tokens.cached_input_tokens} cached), "
        f"{tokens.output_tokens} out ({tokens.reasoning_tokens} reasoning), "
        f"{tokens.requests} calls, {cost}"
    )
    for tier in result.usage_by_tier:
        lines.append(
            f"  {tier.tier or '?'} {tier.model}: {tier.usage.tokens.requests} calls, "
            f"${tier.usage.cost_usd:.6f}"
        )
    lines.append(
        f"escalations: {result.escalations} (rate {result.escalation_rate:.2f}), "
        f"replans: {result.replans}"
    )
    wasted = result.wasted_usage
    if result.model_retries or wasted.tokens.requests:
        lines.append(
            f"transport retries: {result.model_retries}; wasted: {wasted.tokens.requests} "
            f"replies, ${wasted.cost_usd:.6f} (invalid, cut or abandoned)"
        )
    if result.run_dir:
        lines.append(f"events: {result.run_dir}/events.jsonl")
    return "\n".join(lines)


class ProgressSink:
    """Prints one short line per task state change, for people watching a run (not a terminal).

    The plan line comes first: while the plan streams in (tasks start as they arrive), task lines
    wait for it, at most `plan_wait_s` of the run's time. Once the plan is known, task lines end
    with the run so far: tasks finished of the total, time, cost and an ETA (`Progress.eta_s`).
    A model that makes every caller wait (a 429, an outage) gets one line, then at most one per
    `quiet_s` while it lasts, so a long outage is visible without flooding the output.
    """

    def __init__(
        self,
        write: Callable[[str], object] = print,
        *,
        quiet_s: float = 5.0,
        plan_wait_s: float = 5.0,
        history: Mapping[str, float] | None = None,
    ) -> None:
        self._write = write
        self._quiet_s = quiet_s
        self._plan_wait_s = plan_wait_s
        self._last_pause: dict[str, float] = {}
        self._progress = Progress(history=history or {})
        self._held: list[str] = []
        self._held_since: float | None = None
        self._plan_told = False

    def emit(self, event: Event) -> None:
        self._progress.apply(event)
        if event.kind == "model_call_retried":
            line = self._pause_line(event)
        elif event.kind == "plan_validated":
            line = self._plan_line(event)
        else:
            line = _progress_line(event, self._progress)
            if line is not None and line.startswith("  "):
                line += self._so_far(event.at)
        if line is not None:
            self._out(line, event.at)
        if event.kind in ("plan_validated", "plan_rejected", "run_finished"):
            self._release()

    def _out(self, line: str, at: float) -> None:
        """Write `line`, or hold it while a streaming plan has not been told yet."""
        waiting = self._progress.plan_seen and not self._plan_told and line.startswith("  ")
        if waiting and self._held_since is None:
            self._held_since = at
        if waiting and self._held_since is not None and at - self._held_since < self._plan_wait_s:
            self._held.append(line)
            return
        if waiting:  # the plan streams for long: say so, and show what is going on
            known = len(self._progress.tasks)
            streaming = "so far, still streaming (tasks start as they arrive)"
            self._write(f"plan: {_tasks(known)} {streaming}")
            self._plan_told = True
            self._release()
        self._write(line)

    def _release(self) -> None:
        held, self._held, self._held_since = self._held, [], None
        for line in held:
            self._write(line)

    def _plan_line(self, event: PlanValidated) -> str:
        self._plan_told = True
        line = f"plan: {_tasks(len(event.task_ids))}" + (" (replanned)" if event.replan else "")
        eta = self._progress.eta_s(event.at)
        return line if eta is None else f"{line}, ETA {duration_text(eta)}"

    def _so_far(self, at: float) -> str:
        """` | 2/5 done, 3.1s, $0.004200, ETA 6.0s`: the run so far, as much as is known."""
        p = self._progress
        parts: list[str] = []
        if p.plan_complete:
            counts = p.counts()
            parts.append(f"{counts.finished}/{counts.total} done")
        if p.started_at is not None:
            parts.append(duration_text(max(0.0, at - p.started_at)))
        if p.ledger.calls:
            parts.append(cost_text(p.ledger.total, detail=False))
        eta = p.eta_s(at) if p.plan_complete else None
        if eta is not None and p.counts().finished < len(p.tasks):
            parts.append(f"ETA {duration_text(eta)}")
        return f" | {', '.join(parts)}" if parts else ""

    def _pause_line(self, event: ModelCallRetried) -> str | None:
        if event.cooldown_s <= 0:
            return None  # one caller's own backoff: not news for a person
        last = self._last_pause.get(event.model)
        if last is not None and event.at - last < self._quiet_s:
            return None
        self._last_pause[event.model] = event.at
        what = f"HTTP {event.status_code}" if event.status_code else event.error_type
        return f"  wait   {event.model}: {what}, every call paused {event.cooldown_s:.1f}s"


def _progress_line(event: Event, progress: Progress) -> str | None:
    match event.kind:
        case "plan_rejected":
            return f"plan rejected (attempt {event.attempt}): {event.error[:160]}"
        case "task_started":
            return f"  start  {event.task_id} [{event.tier} {event.model}] attempt {event.attempt}"
        case "task_succeeded":
            spent = _spent(progress, event.task_id, event.at)
            return f"  done   {event.task_id} [{event.tier}]{spent} {one_line(event.summary)}"
        case "task_failed":
            spent = _spent(progress, event.task_id, event.at)
            return f"  FAILED {event.task_id} [{event.tier}]{spent} {one_line(event.message)}"
        case "task_skipped":
            return f"  skip   {event.task_id}: {event.reason}"
        case "task_unreviewed":
            return f"  UNREVIEWED {event.task_id}: {one_line(event.reason)}"
        case "escalation_decided" if event.to_tier:
            return (
                f"  up     {event.task_id}: {event.from_tier} -> {event.to_tier} ({event.trigger})"
            )
        case "review_decided" if event.verdict != "accept":
            return f"  review {event.task_id}: {event.verdict} {one_line(event.feedback)}"
        case _:
            return None


def _tasks(n: int) -> str:
    return f"{n} task" if n == 1 else f"{n} tasks"


def _spent(progress: Progress, task_id: TaskId, at: float) -> str:
    """` 1.2s $0.000125`: the task's time (first start to end) and what its calls cost."""
    row = progress.tasks.get(task_id)
    elapsed = row.elapsed_s(at) if row is not None else None
    usage = progress.ledger.by_task.get(task_id)
    time_part = f" {duration_text(elapsed)}" if elapsed is not None else ""
    return time_part + (f" {cost_text(usage, detail=False)}" if usage is not None else "") + ":"
