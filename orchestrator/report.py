"""Human-readable rendering of a run: the DAG with statuses, the answer, usage and escalations."""

from __future__ import annotations

from collections.abc import Callable

from .events import Event, ModelCallRetried
from .models import Failed, RunResult, Skipped, Succeeded, Unreviewed


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
    """Prints one short line per task state change, for people watching a run.

    A model that makes every caller wait (a 429, an outage) gets one line, then at most one per
    `quiet_s` while it lasts, so a long outage is visible without flooding the terminal.
    """

    def __init__(self, write: Callable[[str], object] = print, *, quiet_s: float = 5.0) -> None:
        self._write = write
        self._quiet_s = quiet_s
        self._last_pause: dict[str, float] = {}

    def emit(self, event: Event) -> None:
        if event.kind == "model_call_retried":
            line = self._pause_line(event)
        else:
            line = _progress_line(event)
        if line is not None:
            self._write(line)

    def _pause_line(self, event: ModelCallRetried) -> str | None:
        if event.cooldown_s <= 0:
            return None  # one caller's own backoff: not news for a person
        last = self._last_pause.get(event.model)
        if last is not None and event.at - last < self._quiet_s:
            return None
        self._last_pause[event.model] = event.at
        what = f"HTTP {event.status_code}" if event.status_code else event.error_type
        return f"  wait   {event.model}: {what}, every call paused {event.cooldown_s:.1f}s"


def _progress_line(event: Event) -> str | None:
    match event.kind:
        case "plan_validated":
            return f"plan: {len(event.task_ids)} tasks" + (" (replanned)" if event.replan else "")
        case "plan_rejected":
            return f"plan rejected (attempt {event.attempt}): {event.error[:160]}"
        case "task_started":
            return f"  start  {event.task_id} [{event.tier} {event.model}] attempt {event.attempt}"
        case "task_succeeded":
            return f"  done   {event.task_id} [{event.tier}] {event.summary[:100]}"
        case "task_failed":
            return f"  FAILED {event.task_id} [{event.tier}] {event.message[:100]}"
        case "task_skipped":
            return f"  skip   {event.task_id}: {event.reason}"
        case "task_unreviewed":
            return f"  UNREVIEWED {event.task_id}: {event.reason[:100]}"
        case "escalation_decided" if event.to_tier:
            return (
                f"  up     {event.task_id}: {event.from_tier} -> {event.to_tier} ({event.trigger})"
            )
        case "review_decided" if event.verdict != "accept":
            return f"  review {event.task_id}: {event.verdict} {event.feedback[:100]}"
        case _:
            return None
