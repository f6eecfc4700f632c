"""The engine: goal → plan (with repair) → concurrent execution with review → synthesis → RunResult.

Roles, tools and the model client are passed in; this module never imports agents/ or tools/.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import anyio
import structlog

from .errors import (
    BudgetExceededError,
    ModelBehaviorError,
    ModelError,
    PlanValidationError,
    RunAbortedError,
)
from .escalation import EscalationPolicy
from .events import EventSink, PlanRejected, PlanValidated, RunFinished, RunStarted, ToolCalled
from .gateway import Gateway
from .llm import (
    ModelCapabilities,
    ModelClient,
    ModelReply,
    ModelRequest,
    StreamEvent,
    ToolCall,
    ToolDefinition,
    ToolKind,
)
from .logs import FanOutSink, JsonlSink
from .models import (
    DEFAULT_LADDER,
    Failed,
    Limits,
    Plan,
    RunId,
    RunResult,
    RunStatus,
    Skipped,
    Succeeded,
    TaskId,
    TaskResult,
    TierSpec,
    TierUsage,
    Unreviewed,
)
from .plan import Estimates, PlanGraph, empty_graph, validate_plan
from .pricing import PriceTable
from .retry import RetryPolicy
from .roles import (
    Planner,
    PlanRequest,
    Reviewer,
    ReviewItem,
    ReviewRequest,
    StreamingPlanner,
    SynthesisRequest,
    Synthesizer,
    Verdict,
    Worker,
)
from .store import RunStore
from .supervisor import Message, RunSetup, StreamedPlan, StreamedTask, Supervisor
from .throttle import RateLimit, Throttle
from .toolkit import ApprovalCallback, CheckRunner, Tool, ToolContext, ToolOutput


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineConfig:
    """How runs are executed; every field has a sensible default."""

    ladder: tuple[TierSpec, ...] = DEFAULT_LADDER
    limits: Limits = field(default_factory=Limits)
    policy: EscalationPolicy = field(default_factory=EscalationPolicy)
    prices: PriceTable = field(default_factory=PriceTable.default)
    review: Literal["all", "none"] = "all"
    run_root: Path = Path(".orchestrator/runs")
    stream_plan: bool = True
    """Start tasks while a streaming planner is still writing the plan (LLMCompiler's win)."""
    planner_tier: str | None = None
    """Tier whose model plans, reviews and synthesizes; None means the top of the ladder."""
    latency_history: bool = True
    """Order ready tasks by what the same tasks took in earlier runs when the plan gives no
    estimate (critical-path-first); accepted attempts' durations are recorded either way."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    """How transport faults are retried (backoff, server delays, the shared outage pause)."""
    rate_limits: Mapping[str, RateLimit] = field(default_factory=lambda: {})
    """Per model id: requests / tokens per minute to stay under (else learned from the
    server's `x-ratelimit-limit-*` headers)."""


class Engine:
    """Runs goals. One instance may run many goals, one after another or concurrently."""

    def __init__(
        self,
        client: ModelClient,
        *,
        planner: Planner,
        worker: Worker,
        reviewer: Reviewer,
        synthesizer: Synthesizer,
        tools: Sequence[Tool] = (),
        config: EngineConfig | None = None,
        sinks: Sequence[EventSink] = (),
        check_runner: CheckRunner | None = None,
        approve: ApprovalCallback | None = None,
        clock: Callable[[], float] = time.time,
        new_run_id: Callable[[], str] = lambda: uuid.uuid4().hex[:12],
        throttle: Throttle | None = None,
    ) -> None:
        self.client = client
        self.config = config or EngineConfig()
        self._roles = (planner, worker, reviewer, synthesizer)
        self._tools = {t.name: t for t in tools}
        self._sinks = tuple(sinks)
        self._check_runner = check_runner
        self._approve = approve
        self._clock = clock
        self._new_run_id = new_run_id
        self._cancel_scopes: set[anyio.CancelScope] = set()
        self._throttle = throttle or Throttle(
            self.config.retry,
            ceiling=client.capabilities.parallel_requests,
            rate_limits=self.config.rate_limits,
        )
        """Shared by every run of this engine (or of the app that passed it): one cooldown per
        model, whoever hit the 429."""

    @property
    def top(self) -> TierSpec:
        names = [t.name for t in self.config.ladder]
        tier = self.config.planner_tier
        return self.config.ladder[names.index(tier)] if tier in names else self.config.ladder[-1]

    def cancel(self) -> None:
        """Stop every run of this engine; each returns a partial result with status cancelled."""
        for scope in tuple(self._cancel_scopes):
            scope.cancel()

    async def run(self, goal: str, *, workdir: Path | str = ".", context: str = "") -> RunResult:
        """Plan, execute and review `goal`; always persists events and the (partial) result.

        Raises:
            PlanValidationError: the planner could not produce a valid plan within the repairs.
            RunAbortedError: an unexpected error stopped the run; `.result` is the partial result.
        """
        run_id = RunId(self._new_run_id())
        store = RunStore(self.config.run_root)
        run_dir = store.run_dir(run_id)
        jsonl = JsonlSink(run_dir / "events.jsonl")
        sink = FanOutSink((jsonl, *self._sinks))
        gateway = Gateway(
            self.client,
            run_id=run_id,
            sink=sink,
            prices=self.config.prices,
            limits=self.config.limits,
            throttle=self._throttle,
            clock=self._clock,
        )
        state = _RunState(run_id=run_id, goal=goal, started=time.perf_counter())
        if self.config.latency_history:
            state.estimates = Estimates(history=store.latency_history())
        store.started(run_id, goal, self._clock())
        sink.emit(
            RunStarted(
                run_id=run_id,
                at=self._clock(),
                goal=goal,
                ladder=tuple(t.model for t in self.config.ladder),
            )
        )
        root = Path(workdir).resolve()  # noqa: ASYNC240 - one stat at the start of a run
        try:
            try:
                with structlog.contextvars.bound_contextvars(run_id=run_id):
                    await self._run(state, gateway, root, run_dir, context)
            except PlanValidationError:
                state.status = "failed"
                self._finish(state, gateway, sink, store, run_dir)
                raise
            except anyio.get_cancelled_exc_class():
                state.status = "cancelled"
                self._finish(
                    state, gateway, sink, store, run_dir
                )  # sync: cancellation cannot cut it
                raise
            except Exception as exc:
                state.status = "failed"
                result = self._finish(state, gateway, sink, store, run_dir)
                raise RunAbortedError(f"run {run_id} aborted: {exc!r}", result=result) from exc
            return self._finish(state, gateway, sink, store, run_dir)
        finally:
            jsonl.close()
            store.close()

    async def _run(
        self, state: _RunState, gateway: Gateway, workdir: Path, run_dir: Path, context: str
    ) -> None:
        scope = anyio.CancelScope()
        self._cancel_scopes.add(scope)
        try:
            with scope:
                sup = await self._execute(state, gateway, workdir, run_dir, context)
                sup.close_reviews(f"the run stopped first ({sup.budget_note or 'no reviewer'})")
                state.answer = await self._synthesize(state, gateway)
                state.status = _status(sup, sup.budget_note)
        finally:
            self._cancel_scopes.discard(scope)
        if scope.cancelled_caught:
            state.status = "cancelled"
            if state.supervisor is not None:
                state.supervisor.finalize_cancelled("run cancelled before this task finished")

    async def _execute(
        self, state: _RunState, gateway: Gateway, workdir: Path, run_dir: Path, context: str
    ) -> Supervisor:
        """Plan and run; with a streaming planner, tasks start while the plan is still written."""
        planner = self._roles[0]
        if self.config.stream_plan and isinstance(planner, StreamingPlanner):
            state.graph = empty_graph(state.goal)
            sup = self._supervisor(state, gateway, workdir, run_dir)
            state.supervisor = sup
            request = self._plan_request(state, gateway, context, None, None)
            sup.dispatcher.spawn(self._stream_plan(planner, request, gateway))
            await sup.dispatcher.run()
            if sup.stream_error is None and sup.plan_complete:
                state.plan = sup.graph.plan
                gateway.sink.emit(
                    PlanValidated(
                        run_id=state.run_id,
                        at=self._clock(),
                        task_ids=sup.graph.order,
                        edges=sup.graph.edges,
                    )
                )
                return sup
            gateway.sink.emit(
                PlanRejected(
                    run_id=state.run_id,
                    at=self._clock(),
                    attempt=1,
                    error=sup.stream_error or "no plan",
                )
            )
            reused = {t: r for t, r in sup.results.items() if isinstance(r, Succeeded)}
            state.graph = await self._plan(
                state, gateway, context, sup.rejected_plan, sup.stream_error, first_attempt=2
            )
            keep = _reusable(state.graph, sup.graph, reused)
            carried = [i for i in sup.unreviewed() if state.graph.tasks.get(i.task.id) == i.task]
            sup = self._supervisor(state, gateway, workdir, run_dir, reused=keep, carried=carried)
        else:
            state.graph = await self._plan(state, gateway, context)
            sup = self._supervisor(state, gateway, workdir, run_dir)
        state.supervisor = sup
        await sup.dispatcher.run()
        return sup

    def _stream_plan(
        self, planner: StreamingPlanner, request: PlanRequest, gateway: Gateway
    ) -> Callable[[Callable[[Message], None]], Awaitable[Message]]:
        async def stream(post: Callable[[Message], None]) -> Message:
            try:
                async for item in planner.plan_stream(request, _tiered(gateway, self.top.name)):
                    if isinstance(item, Plan):
                        return StreamedPlan(plan=item)
                    post(StreamedTask(spec=item))
            except ModelError as exc:
                return StreamedPlan(plan=None, error=f"{type(exc).__name__}: {exc}")
            return StreamedPlan(plan=None, error="the planner stream ended without a plan")

        return stream

    def _plan_request(
        self,
        state: _RunState,
        gateway: Gateway,
        context: str,
        rejected: Plan | None,
        error: str | None,
    ) -> PlanRequest:
        return PlanRequest(
            goal=state.goal,
            tools=self._catalog(gateway),
            tiers=tuple(t.name for t in self.config.ladder),
            model=self.top.model,
            context=context,
            rejected=rejected,
            error=error,
        )

    async def _plan(
        self,
        state: _RunState,
        gateway: Gateway,
        context: str,
        rejected: Plan | None = None,
        error: str | None = None,
        *,
        first_attempt: int = 1,
    ) -> PlanGraph:
        sink = gateway.sink
        planner = self._roles[0]
        tiers = tuple(t.name for t in self.config.ladder)
        last: PlanValidationError | None = None if error is None else PlanValidationError(error)
        for attempt in range(first_attempt, self.config.limits.max_plan_repairs + 2):
            request = self._plan_request(state, gateway, context, rejected, error)
            try:
                plan = await planner.plan(request, _tiered(gateway, self.top.name))
            except ModelBehaviorError as exc:
                rejected, error = None, f"the reply was not a valid plan: {exc}"
                last = PlanValidationError(error)
                sink.emit(
                    PlanRejected(
                        run_id=state.run_id, at=self._clock(), attempt=attempt, error=error
                    )
                )
                continue
            try:
                graph = validate_plan(
                    plan,
                    known_tools=self._tools.keys(),
                    known_tiers=tiers,
                    estimates=state.estimates,
                )
            except PlanValidationError as exc:
                rejected, error, last = plan, str(exc), exc
            else:
                state.plan = graph.plan
                sink.emit(
                    PlanValidated(
                        run_id=state.run_id,
                        at=self._clock(),
                        task_ids=graph.order,
                        edges=graph.edges,
                    )
                )
                return graph
            sink.emit(
                PlanRejected(
                    run_id=state.run_id,
                    at=self._clock(),
                    attempt=attempt,
                    error=error,
                    task_ids=last.task_ids,
                )
            )
        assert last is not None
        raise PlanValidationError(
            f"no valid plan after {self.config.limits.max_plan_repairs} repair(s): {last}",
            task_ids=last.task_ids,
            cycle=last.cycle,
        )

    def _catalog(self, gateway: Gateway) -> tuple[ToolDefinition, ...]:
        native: frozenset[ToolKind] = gateway.capabilities.native_tools
        return tuple(self._tools[n].definition(native=native) for n in sorted(self._tools))

    def _supervisor(
        self,
        state: _RunState,
        gateway: Gateway,
        workdir: Path,
        run_dir: Path,
        reused: Mapping[TaskId, Succeeded] | None = None,
        carried: Sequence[ReviewItem] = (),
    ) -> Supervisor:
        sink = gateway.sink
        assert state.graph is not None
        tools = {
            name: _Instrumented(tool, sink, state.run_id, self._clock)
            for name, tool in self._tools.items()
        }
        setup = RunSetup(
            run_id=state.run_id,
            goal=state.goal,
            ladder=self.config.ladder,
            limits=self.config.limits,
            policy=self.config.policy,
            review=self.config.review,
            workdir=workdir,
            run_dir=run_dir,
            reviewer_model=self.top.model,
            tools=tools,
            tool_catalog=self._catalog(gateway),
            approve=self._approve,
            check_runner=self._check_runner,
            clock=self._clock,
            estimates=state.estimates,
        )
        _, worker, reviewer, _ = self._roles
        return Supervisor(
            setup,
            state.graph,
            worker=worker,
            reviewer=_TopReviewer(reviewer, self.top.name),
            gateway=gateway,
            sink=sink,
            reused=reused or {},
            carried=carried,
        )

    async def _synthesize(self, state: _RunState, gateway: Gateway) -> str:
        sup = state.supervisor
        assert sup is not None
        assert state.plan is not None
        lines = {tid: _result_line(r) for tid, r in sup.results.items()}
        request = SynthesisRequest(
            goal=state.goal, plan=sup.graph.plan, results=lines, model=self.top.model
        )
        try:
            return await self._roles[3].synthesize(request, _tiered(gateway, self.top.name))
        except (BudgetExceededError, ModelError) as exc:
            # The work is done and kept; only the prose summary is missing.
            body = "\n".join(f"- {tid}: {line}" for tid, line in lines.items())
            return f"(no synthesis: {type(exc).__name__}: {exc})\n{body}"

    def _finish(
        self, state: _RunState, gateway: Gateway, sink: EventSink, store: RunStore, run_dir: Path
    ) -> RunResult:
        if state.result is not None:
            return state.result
        result = state.build(gateway, self.config.ladder, run_dir)
        store.finished(result, self._clock())
        results = result.results.values()
        sink.emit(
            RunFinished(
                run_id=state.run_id,
                at=self._clock(),
                status=result.status,
                succeeded=sum(isinstance(r, Succeeded) for r in results),
                failed=sum(isinstance(r, Failed) for r in results),
                skipped=sum(isinstance(r, Skipped) for r in results),
                unreviewed=sum(isinstance(r, Unreviewed) for r in results),
                model_retries=result.model_retries,
                wasted_cost_usd=result.wasted_usage.cost_usd,
                escalations=result.escalations,
                escalation_rate=result.escalation_rate,
                cost_usd=result.usage.cost_usd,
                tokens_in=result.usage.tokens.input_tokens,
                tokens_cached=result.usage.tokens.cached_input_tokens,
                tokens_out=result.usage.tokens.output_tokens,
                duration_ms=(time.perf_counter() - state.started) * 1000,
            )
        )
        state.result = result
        return result


@dataclass(slots=True, kw_only=True)
class _RunState:
    """Mutable progress of one run, turned into a `RunResult` at the end."""

    run_id: RunId
    goal: str
    started: float
    status: RunStatus = "completed"
    answer: str = ""
    plan: Plan | None = None
    graph: PlanGraph | None = None
    estimates: Estimates = field(default_factory=Estimates)
    supervisor: Supervisor | None = None
    result: RunResult | None = None

    def build(self, gateway: Gateway, ladder: tuple[TierSpec, ...], run_dir: Path) -> RunResult:
        sup = self.supervisor
        results: dict[TaskId, TaskResult] = dict(sup.results) if sup else {}
        if sup is not None:
            for tid in sup.graph.order:
                results.setdefault(tid, Skipped(task_id=tid, reason=f"run {self.status}"))
        ledger = gateway.ledger
        models = {t.model: t.name for t in ladder}
        by_tier = tuple(
            TierUsage(tier=tier or models.get(model, ""), model=model, usage=usage)
            for (tier, model), usage in sorted(ledger.by_tier.items())
        )
        executed = sum(1 for r in results.values() if not isinstance(r, Skipped))
        escalations = sup.escalations if sup else 0
        return RunResult(
            run_id=self.run_id,
            goal=self.goal,
            status=self.status,
            answer=self.answer,
            plan=sup.graph.plan if sup else self.plan,
            results=results,
            usage=ledger.total,
            usage_by_tier=by_tier,
            usage_by_role=dict(ledger.by_role),
            escalations=escalations,
            escalation_rate=escalations / executed if executed else 0.0,
            replans=sup.replans if sup else 0,
            wasted_usage=ledger.wasted,
            model_retries=ledger.retries,
            run_dir=str(run_dir),
        )


def _reusable(
    new: PlanGraph, old: PlanGraph, done: Mapping[TaskId, Succeeded]
) -> dict[TaskId, Succeeded]:
    """Results of the old graph that the new plan asks for unchanged, with unchanged inputs."""
    keep: dict[TaskId, Succeeded] = {}
    for tid in new.order:
        spec = new.tasks[tid]
        if tid in done and old.tasks.get(tid) == spec and all(d in keep for d in spec.deps):
            keep[tid] = done[tid]
    return keep


def _status(sup: Supervisor, budget_note: str | None) -> RunStatus:
    results = sup.results
    if budget_note is not None or any(
        not isinstance(results.get(t), Succeeded) for t in sup.graph.order
    ):
        return "partial"
    return "completed"


def _result_line(result: TaskResult) -> str:
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


class _TierTag:
    """Tags planner-side requests with the tier that serves them, for per-tier accounting."""

    def __init__(self, client: Gateway, tier: str) -> None:
        self._client = client
        self._tier = tier

    @property
    def capabilities(self) -> ModelCapabilities:
        return self._client.capabilities

    async def complete(self, request: ModelRequest) -> ModelReply:
        return await self._client.complete(self._tag(request))

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        async for event in self._client.stream(self._tag(request)):
            yield event

    def _tag(self, request: ModelRequest) -> ModelRequest:
        return request if request.tier else replace(request, tier=self._tier)


def _tiered(gateway: Gateway, tier: str) -> _TierTag:
    return _TierTag(gateway, tier)


class _TopReviewer:
    """Runs the reviewer role on the top tier's accounting tag."""

    def __init__(self, reviewer: Reviewer, tier: str) -> None:
        self._reviewer = reviewer
        self._tier = tier

    async def review(self, request: ReviewRequest, client: ModelClient) -> tuple[Verdict, ...]:
        assert isinstance(client, Gateway)
        return await self._reviewer.review(request, _tiered(client, self._tier))


class _Instrumented:
    """Wraps a tool so every call becomes a `tool_called` event with its duration."""

    def __init__(
        self, tool: Tool, sink: EventSink, run_id: RunId, clock: Callable[[], float]
    ) -> None:
        self._tool, self._sink, self._run_id, self._clock = tool, sink, run_id, clock

    @property
    def name(self) -> str:
        return self._tool.name

    def definition(self, *, native: frozenset[ToolKind]) -> ToolDefinition:
        return self._tool.definition(native=native)

    async def __call__(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        started = time.perf_counter()
        is_error = True
        try:
            output = await self._tool(call, ctx)
            is_error = output.is_error
            return output
        finally:
            self._sink.emit(
                ToolCalled(
                    run_id=self._run_id,
                    at=self._clock(),
                    task_id=ctx.task_id,
                    tool=call.name,
                    call_id=call.call_id,
                    is_error=is_error,
                    duration_ms=(time.perf_counter() - started) * 1000,
                )
            )
