"""The engine: goal → plan → concurrent execution with review → synthesis → RunResult, journaled.

Every event goes through the run's `Recorder` (journal, then the fold, then the sinks), so the run
can be resumed from its journal after a crash. Roles, tools and the model client are passed in;
this module never imports agents/ or tools/.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import structlog

from .attempts import RunSetup
from .budget import check_budgets
from .engine_options import EngineConfig as EngineConfig
from .errors import (
    JournalError,
    PlanValidationError,
    RunAbortedError,
)
from .events import (
    EventSink,
    RunResumed,
    RunStarted,
)
from .fold import fold
from .gateway import Gateway
from .instrument import Instrumented, TopReviewer
from .journal import JOURNAL_FILE, Journal, JournalEffects, Recorder
from .llm import ModelClient
from .logs import FanOutSink
from .models import Plan, RunId, RunResult, RunStatus, TierSpec
from .outcome import build_result, end_status
from .plan import Estimates, PlanGraph, empty_graph, validate_plan
from .plan_gate import decide, preview_of, refuse, validated
from .planning import PlanContext, catalog, plan_with_repairs, rejected_event, stream_plan
from .preview import EditPlan, OnPlan, PlanPreview, Refuse
from .roles import Planner, Reviewer, StreamingPlanner, Synthesizer, Worker
from .run_end import ActiveRun, finish, sole_refusal, unplanned, write_answer
from .store import RunStore, read_cost_history
from .supervisor import Supervisor
from .supervisor_stream import StreamOutcome
from .throttle import Throttle
from .toolkit import ApprovalCallback, CheckRunner, Tool
from .workspaces import Workspaces


@dataclass(frozen=True, slots=True, kw_only=True)
class Roles:
    """The four roles a run needs, by name."""

    planner: Planner
    worker: Worker
    reviewer: Reviewer
    synthesizer: Synthesizer


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
        on_plan: OnPlan | None = None,
        clock: Callable[[], float] = time.time,
        new_run_id: Callable[[], str] = lambda: uuid.uuid4().hex[:12],
        throttle: Throttle | None = None,
    ) -> None:
        self.client = client
        self.config = config or EngineConfig()
        self.roles = Roles(
            planner=planner, worker=worker, reviewer=reviewer, synthesizer=synthesizer
        )
        self._tools = {t.name: t for t in tools}
        self._sinks = tuple(sinks)
        self._check_runner = check_runner
        self._approve = approve
        self._on_plan = on_plan
        """Asked before any task of a new plan starts (the plan is then not streamed)."""
        self._given: dict[RunId, Plan] = {}
        """Plans passed to `run`, by run, until the run takes them instead of planning."""
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

    async def run(
        self,
        goal: str,
        *,
        workdir: Path | str = ".",
        context: str = "",
        plan: Plan | None = None,
    ) -> RunResult:
        """Plan, execute and review `goal`; the journal keeps every step, so it can be resumed.

        With `plan` (e.g. `Engine.plan`'s, as previewed) the planner is not asked: the plan is
        validated and run as it is.

        Raises:
            PlanValidationError: the planner could not produce a valid plan within the repairs,
                or the plan given is invalid.
            RunAbortedError: an unexpected error stopped the run; `.result` is the partial result.
        """
        self._check_prices()
        run_id = RunId(self._new_run_id())
        root = Path(workdir).resolve()  # noqa: ASYNC240 - one stat at the start of a run
        started = RunStarted(
            run_id=run_id,
            at=self._clock(),
            goal=goal,
            ladder=tuple(t.model for t in self.config.ladder),
            tiers=tuple(t.name for t in self.config.ladder),
            workdir=str(root),
            context=context,
        )
        if plan is not None:
            self._given[run_id] = plan
        try:
            return await self._drive(run_id, root, first=started)
        finally:
            self._given.pop(run_id, None)

    async def plan(self, goal: str, *, workdir: Path | str = ".", context: str = "") -> PlanPreview:
        """Plan and validate `goal` and estimate its cost, without running or journaling anything.

        The planner's calls go through a gateway as in a run (budget, prices, retries; events to
        the sinks), and the run root is only read for its cost history: no run directory, no
        index row. `run(goal, plan=preview.plan)` runs the plan as previewed.

        Raises:
            PlanValidationError: the planner could not produce a valid plan within the repairs.
        """
        self._check_prices()
        run_id = RunId(f"preview-{self._new_run_id()}")
        sink = FanOutSink(self._sinks)
        gateway = Gateway(
            self.client,
            run_id=run_id,
            sink=sink,
            prices=self.config.prices,
            limits=self.config.limits,
            throttle=self._throttle,
            clock=self._clock,
        )
        ctx = PlanContext(
            run_id=run_id,
            goal=goal,
            context=context,
            ladder=self.config.ladder,
            top=self.top,
            tools=self._tools,
            max_repairs=self.config.limits.max_plan_repairs,
            estimates=Estimates(),
            sink=sink,
            clock=self._clock,
        )
        graph = await plan_with_repairs(ctx, self.roles.planner, gateway)
        history = read_cost_history(Path(self.config.run_root))
        root = Path(workdir).resolve()  # noqa: ASYNC240 - one stat, as in `run`
        return preview_of(
            ctx, self.config, gateway, plan=graph.plan, history=history, workdir=str(root)
        )

    async def resume(self, run_id: str) -> RunResult:
        """Continue a run from its journal: finished tasks are kept, in-flight ones run again.

        A completed run is returned as it is. Raises `JournalError` when there is no such run.
        """
        self._check_prices()
        run_dir = Path(self.config.run_root) / run_id
        if not (run_dir / JOURNAL_FILE).is_file():
            raise JournalError(
                f"no journal for run {run_id} under {self.config.run_root} "
                "(see `orchestrator runs list`)"
            )
        return await self._drive(RunId(run_id), None, first=None)

    async def _drive(
        self, run_id: RunId, workdir: Path | None, first: RunStarted | None
    ) -> RunResult:
        store = RunStore(self.config.run_root)
        run_dir = store.run_dir(run_id)
        journal = Journal(run_dir / JOURNAL_FILE, durability=self.config.journal_durability)
        try:
            state = fold(journal.events())
            if first is None and state.status == "completed":
                return build_result(
                    state, status="completed", ladder=self.config.ladder, run_dir=str(run_dir)
                )
            recorder = Recorder(journal, state, self._sinks, verify=self.config.journal_verify)
            if first is not None:
                recorder.emit(first)
                store.started(run_id, first.goal, first.at, pid=os.getpid())
            else:
                recorder.emit(RunResumed(run_id=run_id, at=self._clock(), pid=os.getpid()))
                store.resumed(run_id, pid=os.getpid())
            recorder.commit()
            gateway = Gateway(
                self.client,
                run_id=run_id,
                sink=recorder,
                prices=self.config.prices,
                limits=self.config.limits,
                throttle=self._throttle,
                clock=self._clock,
                ledger=state.ledger.copy(),
            )
            root = workdir or Path(state.workdir)
            if first is None and self.config.isolation:  # the stopped process's copies
                await Workspaces.gc(run_dir / "ws")
            run = ActiveRun(
                run_id=run_id,
                workdir=root,
                run_dir=run_dir,
                recorder=recorder,
                gateway=gateway,
                store=store,
                workspaces=self._workspaces(root, run_dir),
            )
            try:
                return await self._guarded(run)
            finally:
                if run.workspaces is not None:
                    with anyio.CancelScope(shield=True), anyio.move_on_after(30):
                        await run.workspaces.close()
        finally:
            journal.close()
            store.close()

    def _check_prices(self) -> None:
        check_budgets(self.config.limits, self.config.ladder, self.config.prices)

    def _workspaces(self, root: Path, run_dir: Path) -> Workspaces | None:
        """Per-task copies when isolation is on and git is there to keep their bases."""
        if not self.config.isolation or shutil.which("git") is None:
            return None
        return Workspaces(root, run_dir / "ws", hidden=(Path(self.config.run_root).resolve(),))

    async def _guarded(self, run: ActiveRun) -> RunResult:
        try:
            with structlog.contextvars.bound_contextvars(run_id=run.run_id):
                status = await self._run(run)
        except PlanValidationError:
            self._finish(run, "failed")
            raise
        except anyio.get_cancelled_exc_class():
            self._cancelled(run)
            raise
        except Exception as exc:
            refusal = sole_refusal(exc)
            if refusal is not None:  # the budget does not cover even the plan
                unplanned(run, refusal, self._clock)
                return self._finish(run, "failed")
            result = self._finish(run, "failed")
            raise RunAbortedError(f"run {run.run_id} aborted: {exc!r}", result=result) from exc
        return self._finish(run, status)

    async def _run(self, run: ActiveRun) -> RunStatus:
        scope = anyio.CancelScope()
        self._cancel_scopes.add(scope)
        try:
            with scope:
                sup = await self._execute(run)
                stop = run.state.stop_reason
                sup.close_reviews(
                    f"the run stopped first ({stop or 'no reviewer'})", resumable=bool(stop)
                )
                if stop:
                    sup.stopping.close()
                if run.state.answer is None:
                    await write_answer(run, sup, self.roles.synthesizer, self.top, self._clock)
                return end_status(run.state)
        finally:
            self._cancel_scopes.discard(scope)
            if scope.cancelled_caught:
                self._cancelled(run)
        return "cancelled"  # the scope caught a cancel (`cancel()`): the run ends here

    def _cancelled(self, run: ActiveRun) -> None:
        """Journal what the cancel ended (sync: a cancelled scope cannot cut it), then finish."""
        if run.supervisor is not None and run.result is None:
            run.supervisor.stopping.cancelled("run cancelled before this task finished")
        self._finish(run, "cancelled")

    async def _execute(self, run: ActiveRun) -> Supervisor:
        """Plan and run; with a streaming planner, tasks start while the plan is still written.

        A plan given to `run` is taken instead of planning. With `on_plan` the plan is not
        streamed: no task may start before its decision.
        """
        state, planner = run.state, self.roles.planner
        ctx = self._plan_context(run)
        if state.plan_complete:
            graph = validate_plan(
                state.plan(),
                known_tools=self._tools.keys(),
                known_tiers=[t.name for t in self.config.ladder],
                estimates=ctx.estimates,
            )
            return await self._dispatch(run, graph)
        given = self._given.pop(run.run_id, None)
        if given is not None:
            return await self._decide(run, validated(ctx, given))
        if (
            self._on_plan is None
            and self.config.stream_plan
            and isinstance(planner, StreamingPlanner)
        ):
            sup = self._supervisor(run, empty_graph(state.goal), ctx.estimates)
            sup.dispatcher.spawn(stream_plan(ctx, planner, run.gateway))
            await self._settle(run, sup)
            outcome = sup.streaming.outcome or StreamOutcome(error="the planner stream stopped")
            if outcome.error is None:
                return sup
            rejected_event(ctx, 1, outcome.error)
            graph = await plan_with_repairs(
                ctx, planner, run.gateway, outcome.rejected, outcome.error, first_attempt=2
            )
        else:
            graph = await plan_with_repairs(ctx, planner, run.gateway)
        return await self._decide(run, graph)

    async def _dispatch(self, run: ActiveRun, graph: PlanGraph) -> Supervisor:
        sup = self._supervisor(run, graph, self._estimates(run))
        await self._settle(run, sup)
        return sup

    async def _decide(self, run: ActiveRun, graph: PlanGraph) -> Supervisor:
        """Dispatch the plan; with `on_plan`, as it decides: as it is, edited, or not at all."""
        if self._on_plan is None:
            return await self._dispatch(run, graph)
        ctx = self._plan_context(run)
        preview = preview_of(
            ctx,
            self.config,
            run.gateway,
            plan=graph.plan,
            history=run.store.cost_history(),
            workdir=str(run.workdir),
        )
        decision = await decide(self._on_plan, preview)
        if isinstance(decision, Refuse):
            return self._refuse(run, graph, decision.reason)
        if isinstance(decision, EditPlan):
            graph = validated(ctx, decision.plan)
        return await self._dispatch(run, graph)

    def _refuse(self, run: ActiveRun, graph: PlanGraph, reason: str) -> Supervisor:
        """Journal the refused plan (its tasks planned, then skipped) and end the run cancelled."""
        sup = self._supervisor(run, graph, self._estimates(run))
        run.supervisor = sup
        refuse(sup, reason)
        # Nothing is left to run or to write (the answer says the plan was refused): the run
        # ends here, and `_guarded` returns this result as it is.
        self._finish(run, "cancelled")
        return sup

    async def _settle(self, run: ActiveRun, sup: Supervisor) -> None:
        run.supervisor = sup
        await sup.dispatcher.run()

    def _plan_context(self, run: ActiveRun) -> PlanContext:
        return PlanContext(
            run_id=run.run_id,
            goal=run.state.goal,
            context=run.state.context,
            ladder=self.config.ladder,
            top=self.top,
            tools=self._tools,
            max_repairs=self.config.limits.max_plan_repairs,
            estimates=self._estimates(run),
            sink=run.recorder,
            clock=self._clock,
        )

    def _estimates(self, run: ActiveRun) -> Estimates:
        if not self.config.latency_history:
            return Estimates()
        return Estimates(history=run.store.latency_history())

    def _supervisor(self, run: ActiveRun, graph: PlanGraph, estimates: Estimates) -> Supervisor:
        recorder = run.recorder
        tools = {
            name: Instrumented(tool, recorder, run.run_id, self._clock)
            for name, tool in self._tools.items()
        }
        setup = RunSetup(
            run_id=run.run_id,
            goal=run.state.goal,
            ladder=self.config.ladder,
            limits=self.config.limits,
            policy=self.config.policy,
            review=self.config.review,
            workdir=run.workdir,
            run_dir=run.run_dir,
            reviewer_model=self.top.model,
            tools=tools,
            tool_catalog=catalog(self._tools, run.gateway),
            approve=self._approve,
            check_runner=self._check_runner,
            clock=self._clock,
            estimates=estimates,
            effects=JournalEffects(recorder, run.run_id, self._clock),
            workspaces=run.workspaces,
            commit_journal=recorder.commit,
        )
        sup = Supervisor(
            setup,
            graph,
            state=run.state,
            emit=recorder.emit,
            worker=self.roles.worker,
            reviewer=TopReviewer(self.roles.reviewer, self.top.name),
            gateway=run.gateway,
        )
        sup.dispatcher.before_dispatch = recorder.barrier
        return sup

    def _finish(self, run: ActiveRun, status: RunStatus) -> RunResult:
        return finish(run, status, self.config.ladder, self._clock)
