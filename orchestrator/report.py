"""Human-readable rendering of a run: the DAG with statuses, the answer, usage and escalations."""

from __future__ import annotations

from collections.abc import Callable

from .events import Event
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
    if result.run_dir:
        lines.append(f"events: {result.run_dir}/events.jsonl")
    return "\n".join(lines)


class ProgressSink:
    """Prints one short line per task state change, for people watching a run."""

    def __init__(self, write: Callable[[str], object] = print) -> None:
        self._write = write

    def emit(self, event: Event) -> None:
        line = _progress_line(event)
        if line is not None:
            self._write(line)


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
        case "escalation_decided" if event.to_tier:
            return (
                f"  up     {event.task_id}: {event.from_tier} -> {event.to_tier} ({event.trigger})"
            )
        case "review_decided" if event.verdict != "accept":
            return f"  review {event.task_id}: {event.verdict} {event.feedback[:100]}"
        case _:
            return None
