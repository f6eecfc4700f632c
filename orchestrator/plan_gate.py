"""Between a valid plan and its first task: the plan's cost preview and `on_plan`'s decision."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import cast

from .engine_options import EngineConfig
from .errors import ConfigError, PlanValidationError
from .events import AnswerWritten
from .gateway import Gateway
from .models import Plan
from .plan import PlanGraph, validate_plan
from .planning import PlanContext, catalog, rejected_event
from .preview import (
    Accept,
    CostModel,
    EditPlan,
    HistoricCost,
    OnPlan,
    PlanDecision,
    PlanPreview,
    Refuse,
    estimate_plan,
)
from .supervisor import Supervisor


def preview_of(
    ctx: PlanContext,
    config: EngineConfig,
    gateway: Gateway,
    *,
    plan: Plan,
    history: Mapping[str, HistoricCost],
    workdir: str,
) -> PlanPreview:
    """The preview of a valid plan, priced by the engine's settings; what the gateway has spent
    so far is what planning it cost."""
    model = CostModel(
        ladder=ctx.ladder,
        top=ctx.top,
        limits=config.limits,
        policy=config.policy,
        prices=config.prices,
        review=config.review,
        tools={t.name: t for t in catalog(ctx.tools, gateway)},
    )
    estimate = estimate_plan(plan, model, history=history, planning=gateway.ledger.total)
    return PlanPreview(goal=ctx.goal, plan=plan, estimate=estimate, workdir=workdir)


def validated(ctx: PlanContext, plan: Plan) -> PlanGraph:
    """A plan the planner did not write (given to `run`, edited by `on_plan`), validated as the
    planner's are; an invalid one is journaled as rejected.

    Raises:
        PlanValidationError: not a valid DAG over the known tools and tiers.
    """
    try:
        return validate_plan(
            plan,
            known_tools=ctx.tools.keys(),
            known_tiers=[t.name for t in ctx.ladder],
            estimates=ctx.estimates,
        )
    except PlanValidationError as exc:
        rejected_event(ctx, 1, str(exc), task_ids=exc.task_ids)
        raise


async def decide(on_plan: OnPlan, preview: PlanPreview) -> PlanDecision:
    """Ask `on_plan` (sync or async) what to do with the plan.

    Raises:
        ConfigError: it returned something other than `Accept`, `EditPlan` or `Refuse`.
    """
    decided = cast("object", on_plan(preview))  # checked below: callers may not type-check
    if inspect.isawaitable(decided):
        decided = await decided
    if isinstance(decided, Accept | EditPlan | Refuse):
        return decided
    raise ConfigError(
        f"on_plan returned {decided!r}; return Accept(), EditPlan(plan) or Refuse(reason)"
    )


def refuse(sup: Supervisor, reason: str) -> None:
    """Journal a refused plan: dispatch stops before any task starts, every task ends skipped
    naming the refusal, and the answer says so (no synthesis call is made for nothing)."""
    sup.stopping.stop("refused", reason, cause="refused")
    sup.emit(
        AnswerWritten(
            run_id=sup.setup.run_id,
            at=sup.now(),
            answer=f"plan refused: {reason}; no task was executed",
        )
    )
