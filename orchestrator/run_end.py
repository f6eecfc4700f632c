"""How a run ends: the answer (the synthesizer's prose over the recorded results), and the result
journaled as `run_finished`, exported and indexed. Split from the engine, which decides when."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from .errors import BudgetExceededError, ModelError
from .events import AnswerWritten, DispatchStopped, RunFinished
from .fold import RunState
from .gateway import Gateway
from .instrument import tiered
from .journal import Recorder
from .models import RunId, RunResult, RunStatus, TierSpec
from .outcome import build_result, grounded, result_line
from .roles import SynthesisRequest, Synthesizer
from .store import RunStore
from .supervisor import Supervisor
from .workspaces import Workspaces


@dataclass(slots=True, kw_only=True)
class ActiveRun:
    """One run's moving parts (the state itself is `recorder.state`)."""

    run_id: RunId
    workdir: Path
    run_dir: Path
    recorder: Recorder
    gateway: Gateway
    store: RunStore
    started: float = field(default_factory=time.perf_counter)
    supervisor: Supervisor | None = None
    result: RunResult | None = None
    workspaces: Workspaces | None = None

    @property
    def state(self) -> RunState:
        return self.recorder.state


async def write_answer(
    run: ActiveRun,
    sup: Supervisor,
    synthesizer: Synthesizer,
    top: TierSpec,
    clock: Callable[[], float],
) -> None:
    """Journal the answer: the synthesizer's prose, then every task's recorded result verbatim
    (so a weak model can neither hide nor invent one). After a budget stop it is written from
    the share held back for it; if even that does not fit, the results alone are the answer."""
    state = run.state
    lines = {tid: result_line(r) for tid, r in state.results.items()}
    stop = sup.stopping.reason if state.stop_reason else ""
    request = SynthesisRequest(
        goal=state.goal, plan=sup.graph.plan, results=lines, model=top.model, stopped=stop
    )
    run.recorder.commit()
    try:
        prose = await synthesizer.synthesize(request, tiered(run.gateway, top.name))
    except (BudgetExceededError, ModelError) as exc:
        # The work is done and kept; only the prose summary is missing.
        head = f"The run stopped early ({stop}).\n" if stop else ""
        prose = f"{head}(no synthesis: {type(exc).__name__}: {exc})"
    answer = grounded(prose, state)
    run.recorder.emit(AnswerWritten(run_id=run.run_id, at=clock(), answer=answer))


def unplanned(run: ActiveRun, refusal: BudgetExceededError, clock: Callable[[], float]) -> None:
    """A run budget refused the planner's call: nothing ran; the journal says which budget."""
    now, detail = clock(), str(refusal)
    run.recorder.emit(
        DispatchStopped(run_id=run.run_id, at=now, reason=refusal.reason, detail=detail)
    )
    answer = f"No plan was made: the planner's call did not fit the budget ({detail})."
    run.recorder.emit(AnswerWritten(run_id=run.run_id, at=now, answer=answer))


def finish(
    run: ActiveRun, status: RunStatus, ladder: tuple[TierSpec, ...], clock: Callable[[], float]
) -> RunResult:
    """Journal `run_finished`, export events.jsonl, index the result (once per run)."""
    if run.result is not None:
        return run.result
    state = run.state
    result = build_result(state, status=status, ladder=ladder, run_dir=str(run.run_dir))
    usage = result.usage
    run.recorder.emit(
        RunFinished(
            run_id=run.run_id,
            at=clock(),
            status=status,
            succeeded=len(result.succeeded),
            failed=len(result.failed),
            skipped=len(result.skipped),
            unreviewed=len(result.unreviewed),
            model_retries=result.model_retries,
            wasted_cost_usd=result.wasted_usage.cost_usd,
            escalations=result.escalations,
            escalation_rate=result.escalation_rate,
            cost_usd=usage.cost_usd,
            tokens_in=usage.tokens.input_tokens,
            tokens_cached=usage.tokens.cached_input_tokens,
            tokens_out=usage.tokens.output_tokens,
            duration_ms=(time.perf_counter() - run.started) * 1000,
            stop_reason=state.stop_reason,
            stop_detail=state.stop_detail,
        )
    )
    run.recorder.commit()
    run.recorder.journal.export_jsonl(run.run_dir / "events.jsonl")
    run.store.finished(result, clock())
    run.result = result
    return result


def sole_refusal(exc: BaseException) -> BudgetExceededError | None:
    """The budget refusal `exc` is, alone or as the one error of a task group."""
    while isinstance(exc, BaseExceptionGroup):
        group = cast("BaseExceptionGroup[BaseException]", exc)
        if len(group.exceptions) != 1:
            return None
        exc = group.exceptions[0]
    return exc if isinstance(exc, BudgetExceededError) else None
