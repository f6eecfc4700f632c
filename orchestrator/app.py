"""The composition root: `Orchestrator` wires the default roles, tools and backend into the engine.

This is the one module of orchestrator/ that imports orchestrator.agents and orchestrator.tools;
the engine itself (run.py and below) never does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .backends import open_backend
from .engine_options import RoleOptions
from .escalation import EscalationPolicy
from .events import EventSink
from .llm import ModelClient
from .models import DEFAULT_LADDER, Limits, Plan, RunResult, TierSpec
from .preview import OnPlan, PlanPreview
from .pricing import PriceTable
from .retry import RetryPolicy
from .roles import Planner, Reviewer, Synthesizer, Worker
from .run import Engine, EngineConfig
from .settings import Settings, ShellSandbox
from .throttle import RateLimit, Throttle
from .toolkit import ApprovalCallback, CheckOutcome, Tool

if TYPE_CHECKING:
    from .tools.sandbox import Sandbox


class Orchestrator:
    """Plan a goal with the top tier, execute leaves on cheap tiers, review, escalate, answer.

    Every argument is optional: with no client, the backend comes from `settings` (or the
    environment): OPENAI_API_KEY → OpenAI, a base URL → any OpenAI-compatible server, neither →
    the embedded local model. The built-in shell tool and acceptance checks are sandboxed unless
    `settings.shell_sandbox` (ORCH_SHELL_SANDBOX) is "off"; that is read here, at construction.
    With `on_plan`, each run's plan is previewed (`PlanPreview`) and waits for its decision.
    """

    def __init__(
        self,
        *,
        tools: Sequence[Tool | Callable[..., Any]] = (),
        workdir: str | Path = ".",
        client: ModelClient | None = None,
        settings: Settings | None = None,
        ladder: Sequence[TierSpec] | None = None,
        limits: Limits | None = None,
        policy: EscalationPolicy | None = None,
        prices: PriceTable | None = None,
        review: Literal["all", "none"] = "all",
        builtin_tools: bool = True,
        sinks: Sequence[EventSink] = (),
        approve: ApprovalCallback | None = None,
        planner: Planner | None = None,
        worker: Worker | None = None,
        reviewer: Reviewer | None = None,
        synthesizer: Synthesizer | None = None,
        role_options: RoleOptions | None = None,
        retry: RetryPolicy | None = None,
        rate_limits: Mapping[str, RateLimit] | None = None,
        on_plan: OnPlan | None = None,
    ) -> None:
        from .tools.registry import ToolRegistry

        registry = ToolRegistry()
        if builtin_tools:
            mode = (settings or Settings.from_env()).shell_sandbox
            for t in default_tools(shell_sandbox=mode):
                registry.register(t)
        for t in tools:
            registry.register(t)
        self.tools: tuple[Tool, ...] = tuple(registry)
        self.workdir = Path(workdir)
        self._client = client
        self._settings = settings
        self._ladder = tuple(ladder) if ladder is not None else None
        self._limits = limits
        self._policy = policy or EscalationPolicy()
        self._prices = prices or PriceTable.default()
        self._review: Literal["all", "none"] = review
        self._sinks = tuple(sinks)
        self._approve = approve
        self._on_plan = on_plan
        self._roles = (planner, worker, reviewer, synthesizer)
        self._role_options = role_options
        self._retry = retry or RetryPolicy()
        self._rate_limits = dict(rate_limits or {})
        self._throttle: Throttle | None = None
        """One per orchestrator, so its runs back off together (made with the first engine)."""
        self._engines: list[Engine] = []
        self.notice: str | None = None
        """What the backend wants the user told (e.g. that the embedded model is a toy)."""

    async def run(self, goal: str, *, context: str = "", plan: Plan | None = None) -> RunResult:
        """Run one goal end to end and return its result (partial if it was cancelled).

        With `plan` (e.g. `plan(goal)`'s preview's) the planner is not asked again.
        """
        settings = self._settings or Settings.from_env()
        if self._client is not None:
            ladder = self._ladder or DEFAULT_LADDER
            engine = self._engine(self._client, ladder, self._role_options, settings)
            return await self._run(engine, goal, context, plan)
        async with open_backend(settings) as backend:
            self.notice = backend.notice
            options = self._role_options or backend.role_options
            ladder = self._ladder or backend.ladder
            engine = self._engine(backend.client, ladder, options, settings)
            return await self._run(engine, goal, context, plan)

    async def plan(self, goal: str, *, context: str = "") -> PlanPreview:
        """Plan `goal` and estimate what running it may cost; no task runs, nothing is saved.

        Raises `PlanValidationError` when the planner gives no valid plan within the repairs.
        """
        settings = self._settings or Settings.from_env()
        if self._client is not None:
            ladder = self._ladder or DEFAULT_LADDER
            engine = self._engine(self._client, ladder, self._role_options, settings)
            return await engine.plan(goal, workdir=self.workdir, context=context)
        async with open_backend(settings) as backend:
            self.notice = backend.notice
            options = self._role_options or backend.role_options
            ladder = self._ladder or backend.ladder
            engine = self._engine(backend.client, ladder, options, settings)
            return await engine.plan(goal, workdir=self.workdir, context=context)

    async def resume(self, run_id: str) -> RunResult:
        """Continue an interrupted (or cancelled) run from its journal and return its result.

        Tasks that succeeded are never run again; attempts that were in flight run again with a
        new attempt number; a complete plan is not planned again; usage and cost carry over.
        Raises `JournalError` when the run root has no such run.
        """
        settings = self._settings or Settings.from_env()
        if self._client is not None:
            ladder = self._ladder or DEFAULT_LADDER
            engine = self._engine(self._client, ladder, self._role_options, settings)
            return await self._serve(engine, engine.resume(run_id))
        async with open_backend(settings) as backend:
            self.notice = backend.notice
            options = self._role_options or backend.role_options
            ladder = self._ladder or backend.ladder
            engine = self._engine(backend.client, ladder, options, settings)
            return await self._serve(engine, engine.resume(run_id))

    async def _run(
        self, engine: Engine, goal: str, context: str, plan: Plan | None = None
    ) -> RunResult:
        work = engine.run(goal, workdir=self.workdir, context=context, plan=plan)
        return await self._serve(engine, work)

    async def _serve(self, engine: Engine, work: Coroutine[Any, Any, RunResult]) -> RunResult:
        self._engines.append(engine)
        try:
            return await work
        finally:
            self._engines.remove(engine)

    def cancel(self) -> None:
        """Cancel every run in progress; each returns a partial result with status cancelled."""
        for engine in self._engines:
            engine.cancel()

    def _engine(
        self,
        client: ModelClient,
        ladder: tuple[TierSpec, ...],
        options: RoleOptions | None,
        settings: Settings,
    ) -> Engine:
        from .agents.planner import DagPlanner
        from .agents.reviewer import BatchReviewer
        from .agents.synthesizer import AnswerSynthesizer
        from .agents.worker import ExecutorWorker

        opts = options or RoleOptions()
        kw: dict[str, Any] = {
            "temperature": opts.temperature,
            "max_output_tokens": opts.max_output_tokens,
        }
        compact: dict[str, Any] = {**kw, "compact": opts.compact}
        planner, worker, reviewer, synthesizer = self._roles
        limits = self._limits or Limits(max_parallel=settings.max_parallel)
        run_root = settings.run_root
        if self._throttle is None:
            self._throttle = Throttle(
                self._retry,
                ceiling=client.capabilities.parallel_requests,
                rate_limits=self._rate_limits,
            )
        return Engine(
            client,
            planner=planner or DagPlanner(**compact),
            worker=worker or ExecutorWorker(**compact),
            reviewer=reviewer or BatchReviewer(**kw),
            synthesizer=synthesizer or AnswerSynthesizer(**kw),
            tools=self.tools,
            config=EngineConfig(
                ladder=ladder,
                limits=limits,
                policy=self._policy,
                prices=self._prices,
                review=self._review,
                run_root=run_root if run_root.is_absolute() else self.workdir / run_root,
                retry=self._retry,
                rate_limits=self._rate_limits,
                journal_verify=settings.journal_verify,
                journal_durability=settings.journal_durability,
            ),
            throttle=self._throttle,
            sinks=self._sinks,
            check_runner=functools.partial(shell_check, shell_sandbox=settings.shell_sandbox),
            approve=self._approve,
            on_plan=self._on_plan,
        )


def default_tools(*, shell_sandbox: ShellSandbox = "auto") -> tuple[Tool, ...]:
    """The built-in executor tools: read-only file tools, apply_patch and a sandboxed shell."""
    from .tools.apply_patch import ApplyPatchTool
    from .tools.files import file_tools
    from .tools.shell import ShellTool

    return (*file_tools(), ApplyPatchTool(), ShellTool(sandbox=_sandbox(shell_sandbox)))


async def shell_check(
    command: str,
    workdir: Path,
    timeout_s: float,
    run_dir: Path,
    *,
    shell_sandbox: ShellSandbox = "auto",
) -> CheckOutcome:
    """The default acceptance-check runner: the shell tool's runner, in the workspace."""
    from .tools.shell import run_acceptance_check

    sandbox = _sandbox(shell_sandbox)
    result = await run_acceptance_check(command, workdir, timeout_s, run_dir, sandbox=sandbox)
    status = "timed out" if result.timed_out else f"exit code {result.exit_code}"
    output = f"{status}\n{result.stdout}\n{result.stderr}".strip()
    return CheckOutcome(
        passed=result.exit_code == 0 and not result.timed_out, output=output[-4000:]
    )


def _sandbox(mode: ShellSandbox) -> Sandbox | Literal["detect"]:
    """The shell runner's isolation for a settings value; "off" says why in its status message."""
    from .tools.sandbox import Sandbox

    if mode == "off":
        return Sandbox.disabled("ORCH_SHELL_SANDBOX=off")
    return "detect"
