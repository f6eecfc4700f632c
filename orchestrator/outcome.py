"""The run's result as a projection of its state: what `run` returns, `result.json` holds and
`runs show` prints, all from the same fold."""

from __future__ import annotations

from typing import get_args

from .fold import RunState
from .models import (
    Failed,
    RunId,
    RunResult,
    RunStatus,
    Skipped,
    StopReason,
    Succeeded,
    TaskId,
    TaskResult,
    TierSpec,
    TierUsage,
    Unreviewed,
)


def build_result(
    state: RunState, *, status: RunStatus, ladder: tuple[TierSpec, ...], run_dir: str
) -> RunResult:
    """The `RunResult` the state describes. Tasks not ended yet count as skipped by `status`,
    except in a projection of a run still going (or interrupted), where they are left out."""
    in_progress = status in ("running", "interrupted")
    results: dict[TaskId, TaskResult] = {}
    for tid, rec in state.tasks.items():
        if rec.result is not None:
            results[tid] = rec.result
        elif not in_progress:
            results[tid] = Skipped(task_id=tid, reason=f"run {status}")
    ledger = state.ledger
    models = {t.model: t.name for t in ladder}
    by_tier = tuple(
        TierUsage(tier=tier or models.get(model, ""), model=model, usage=usage)
        for (tier, model), usage in sorted(ledger.by_tier.items())
    )
    executed = sum(1 for r in results.values() if not isinstance(r, Skipped))
    return RunResult(
        run_id=RunId(state.run_id),
        goal=state.goal,
        status=status,
        answer=state.answer or "",
        plan=state.plan() if state.tasks or state.plan_complete else None,
        results=results,
        usage=ledger.total,
        usage_by_tier=by_tier,
        usage_by_role=dict(ledger.by_role),
        usage_by_task=dict(ledger.by_task),
        escalations=state.escalations,
        escalation_rate=state.escalations / executed if executed else 0.0,
        replans=state.replans,
        wasted_usage=ledger.wasted,
        model_retries=ledger.retries,
        run_dir=run_dir,
        stop_reason=stop_reason_of(state.stop_reason),
        stop_detail=state.stop_detail,
    )


_STOP_REASONS: tuple[StopReason, ...] = get_args(StopReason)


def stop_reason_of(text: str) -> StopReason | None:
    """The typed reason a journal's stop text gives (older journals hold free text)."""
    if not text:
        return None
    for reason in _STOP_REASONS:
        if text == reason:
            return reason
    if text.startswith("budget"):  # "budget: cost limit reached: ..." before reasons were typed
        if "call" in text:
            return "budget: calls"
        return "budget: tokens" if "token" in text else "budget: cost"
    if text.startswith("refused"):
        return "refused"
    return "cancelled"


def end_status(state: RunState) -> RunStatus:
    """completed when every planned task succeeded and nothing stopped the run early; a run
    whose plan was refused is cancelled (nothing ran by choice)."""
    if state.stop_reason == "refused":
        return "cancelled"
    if state.stop_reason or any(r.phase != "succeeded" for r in state.tasks.values()):
        return "partial"
    return "completed"


def result_line(result: TaskResult) -> str:
    """One line per task for the synthesizer (and its fallback answer)."""
    match result:
        case Succeeded():
            outputs = "; ".join(f"{k}={v}" for k, v in result.outputs.items())
            return f"succeeded: {result.summary}" + (f" | outputs: {outputs}" if outputs else "")
        case Failed():
            return f"FAILED after {result.attempts} attempt(s): {result.error.message}"
        case Skipped():
            return f"SKIPPED: {result.reason}"
        case Unreviewed():
            return f"UNREVIEWED ({result.reason}): {result.summary}"


MAX_OUTPUT_CHARS = 4_000
"""Per recorded output in the answer; the whole value is in result.json."""


def grounded(prose: str, state: RunState) -> str:
    """The answer as users read it: the synthesizer's prose, then every task's recorded result
    and outputs verbatim, so a weak model can neither hide a result nor invent one."""
    results = state.results
    if not results:
        return prose
    lines = [prose.rstrip(), "", "---", "Task results, as recorded:"]
    for tid, result in results.items():
        if not isinstance(result, Succeeded):
            lines.append(f"- {tid}: {result_line(result)}")
            continue
        lines.append(f"- {tid}: succeeded: {result.summary}")
        for name, value in result.outputs.items():
            cut = value[:MAX_OUTPUT_CHARS]
            more = f" … ({len(value) - len(cut)} more chars in result.json)" if cut != value else ""
            lines.append(f"    {name}: {cut}{more}")
    return "\n".join(lines)
