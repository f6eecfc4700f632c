"""Getting a valid plan: one call with repairs, or a stream whose tasks start early."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from .attempts import Message, StreamedPlan, StreamedTask
from .errors import ModelBehaviorError, ModelError, PlanValidationError
from .events import EventSink, PlanRejected
from .gateway import Gateway
from .instrument import tiered
from .llm import ToolDefinition, ToolKind
from .models import Plan, RunId, TierSpec
from .plan import Estimates, PlanGraph, validate_plan
from .roles import Planner, PlanRequest, StreamingPlanner
from .toolkit import Tool


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanContext:
    """What planning one run needs."""

    run_id: RunId
    goal: str
    context: str
    ladder: tuple[TierSpec, ...]
    top: TierSpec
    tools: Mapping[str, Tool]
    max_repairs: int
    estimates: Estimates
    sink: EventSink
    clock: Callable[[], float]


def catalog(tools: Mapping[str, Tool], gateway: Gateway) -> tuple[ToolDefinition, ...]:
    """The tools as the planner and reviewer see them, natively where the backend can."""
    native: frozenset[ToolKind] = gateway.capabilities.native_tools
    return tuple(tools[n].definition(native=native) for n in sorted(tools))


def plan_request(
    ctx: PlanContext, gateway: Gateway, rejected: Plan | None = None, error: str | None = None
) -> PlanRequest:
    return PlanRequest(
        goal=ctx.goal,
        tools=catalog(ctx.tools, gateway),
        tiers=tuple(t.name for t in ctx.ladder),
        model=ctx.top.model,
        context=ctx.context,
        rejected=rejected,
        error=error,
    )


async def plan_with_repairs(
    ctx: PlanContext,
    planner: Planner,
    gateway: Gateway,
    rejected: Plan | None = None,
    error: str | None = None,
    *,
    first_attempt: int = 1,
) -> PlanGraph:
    """Ask for a plan until one validates, sending each invalid one back with its errors.

    Raises:
        PlanValidationError: no valid plan within `max_repairs` repairs.
    """
    last: PlanValidationError | None = None if error is None else PlanValidationError(error)
    for attempt in range(first_attempt, ctx.max_repairs + 2):
        request = plan_request(ctx, gateway, rejected, error)
        try:
            plan = await planner.plan(request, tiered(gateway, ctx.top.name))
        except ModelBehaviorError as exc:
            rejected, error = None, f"the reply was not a valid plan: {exc}"
            last = PlanValidationError(error)
            rejected_event(ctx, attempt, error)
            continue
        try:
            return validate_plan(
                plan,
                known_tools=ctx.tools.keys(),
                known_tiers=[t.name for t in ctx.ladder],
                estimates=ctx.estimates,
            )
        except PlanValidationError as exc:
            rejected, error, last = plan, str(exc), exc
        rejected_event(ctx, attempt, error, task_ids=last.task_ids)
    assert last is not None
    raise PlanValidationError(
        f"no valid plan after {ctx.max_repairs} repair(s): {last}",
        task_ids=last.task_ids,
        cycle=last.cycle,
    )


def rejected_event(
    ctx: PlanContext, attempt: int, error: str, *, task_ids: tuple[str, ...] = ()
) -> None:
    ctx.sink.emit(
        PlanRejected(
            run_id=ctx.run_id, at=ctx.clock(), attempt=attempt, error=error, task_ids=task_ids
        )
    )


def stream_plan(
    ctx: PlanContext, planner: StreamingPlanner, gateway: Gateway
) -> Callable[[Callable[[Message], None]], Awaitable[Message]]:
    """Background work for the dispatcher: post each task as the planner finishes writing it."""
    request = plan_request(ctx, gateway)

    async def stream(post: Callable[[Message], None]) -> Message:
        try:
            async for item in planner.plan_stream(request, tiered(gateway, ctx.top.name)):
                if isinstance(item, Plan):
                    return StreamedPlan(plan=item)
                post(StreamedTask(spec=item))
        except ModelError as exc:
            return StreamedPlan(plan=None, error=f"{type(exc).__name__}: {exc}")
        return StreamedPlan(plan=None, error="the planner stream ended without a plan")

    return stream
