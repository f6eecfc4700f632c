"""The composition root: `Orchestrator` wires the default roles, tools and backend into the engine.

This is the one module of orchestrator/ that imports orchestrator.agents (tools come through
`plugins.load_tools`); the engine itself (run.py and below) never does.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import structlog

from .backends import open_backend
from .cancel import CancelToken, cancel_scope
from .cassette import RecordingClient
from .cassette_replay import ReplayModel
from .engine_options import RoleOptions
from .errors import ConfigError
from .escalation import EscalationPolicy
from .events import EventSink
from .generation import Generation
from .generation_roles import with_generation
from .journal import read_state
from .llm import ModelClient
from .models import DEFAULT_LADDER, Limits, Plan, RunId, RunResult, TierSpec
from .outcome import build_result
from .plugins import LoadedTools, PluginFailure, load_tools, sandbox_for
from .plugins import default_tools as default_tools
from .preview import OnPlan, PlanPreview
from .pricing import PriceTable
from .retry import RetryPolicy
from .roles import Planner, Reviewer, Synthesizer, Worker
from .run import Engine, EngineConfig
from .settings import Settings, ShellSandbox, as_generation
from .store import RunStore
from .stream import RunStream
from .throttle import RateLimit, Throttle
from .toolkit import ApprovalCallback, CheckOutcome, Tool

_log = structlog.get_logger(__name__)

_Start = Callable[[Engine, RunId], Awaitable[RunResult]]
"""Starts the engine's work for one run id: `engine.run(...)` or `engine.resume(...)`."""


class Orchestrator:
    """Plan a goal with the top tier, execute leaves on cheap tiers, review, escalate, answer.

    Every argument is optional: with no client, the backend comes from `settings` (or the
    environment, read once here): OPENAI_API_KEY → OpenAI, a base URL → any OpenAI-compatible
    server, neither → the embedded local model. Explicit arguments (`ladder`, `limits`,
    `policy`, `prices`, `review`, `retry`, `rate_limits`) win over `config`; a `config` field
    left at its default takes the settings' or the backend's value (ladder, `max_parallel`,
    `run_root`, journal options). Tools: the built-ins, `tools`, then installed plugins (see
    `plugins.load_tools`; `plugins=False` or ORCH_PLUGINS=0 leaves them out). With ORCH_OTEL=1
    an `OTelSink` is added to `sinks`. With `on_plan`, each plan is previewed before it runs.
    `generation` sets temperature, output cap and reasoning effort per role and tier (syntax in
    `orchestrator.generation`), option by option over `Settings.generation` (ORCH_GEN).
    """

    def __init__(
        self,
        *,
        tools: Sequence[Tool | Callable[..., Any]] = (),
        workdir: str | Path = ".",
        client: ModelClient | None = None,
        settings: Settings | None = None,
        config: EngineConfig | None = None,
        ladder: Sequence[TierSpec] | None = None,
        limits: Limits | None = None,
        policy: EscalationPolicy | None = None,
        prices: PriceTable | None = None,
        review: Literal["all", "none"] | None = None,
        builtin_tools: bool = True,
        plugins: bool | None = None,
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
        generation: Generation | str | Mapping[str, object] | None = None,
    ) -> None:
        self._settings = settings or Settings.from_env()
        self._generation = self._settings.generation
        """Per role and tier options (`orchestrator.generation`); `generation` over settings'."""
        if generation is not None:
            given = as_generation(generation, source="Orchestrator(generation=...)")
            self._generation = self._generation.merged(given)
        loaded = load_tools(
            self._settings, tools=tools, builtin_tools=builtin_tools, plugins=plugins
        )
        _report_skipped(loaded)
        self.tools: tuple[Tool, ...] = loaded.tools
        self.plugin_errors: tuple[PluginFailure, ...] = loaded.errors
        """Installed plugins that were skipped (each logged as `tool_plugin_skipped`)."""
        self.workdir = Path(workdir).resolve()
        self.sinks: tuple[EventSink, ...] = (*sinks, *_otel_sinks(self._settings))
        """Every sink runs report to (an `OTelSink` last when ORCH_OTEL is set)."""
        self._client = client
        self._ladder = tuple(ladder) if ladder is not None else None
        self._limits = limits
        overrides = {"policy": policy, "prices": prices, "review": review, "retry": retry}
        self._config = replace(
            config or EngineConfig(),
            **{k: v for k, v in overrides.items() if v is not None},
            **({} if rate_limits is None else {"rate_limits": dict(rate_limits)}),
        )
        self._approve = approve
        self._on_plan = on_plan
        self._roles = (planner, worker, reviewer, synthesizer)
        self._role_options = role_options
        self._throttle: Throttle | None = None
        """One per orchestrator, so its runs back off together (made with the first engine)."""
        self._running: set[CancelToken] = set()
        """One token per run in progress (from its call, backend start included)."""
        self._cancel_next = False
        """`cancel()` came while no run was going: the next run starts cancelled."""
        self.notice: str | None = None
        """What the backend wants the user told (e.g. that the embedded model is a toy)."""

    async def run(
        self,
        goal: str,
        *,
        context: str = "",
        plan: Plan | None = None,
        cancel: CancelToken | None = None,
    ) -> RunResult:
        """Run one goal end to end and return its result (partial if it was cancelled).

        With `plan` (e.g. `plan(goal)`'s preview's) the planner is not asked again. `cancel`
        stops this run only (see `CancelToken`); `cancel()` stops every run of this instance.
        """
        return await self._serve(self._new_run(goal, context, plan), _new_run_id(), cancel)

    def stream(
        self,
        goal: str,
        *,
        context: str = "",
        plan: Plan | None = None,
        cancel: CancelToken | None = None,
    ) -> RunStream:
        """Run `goal`, its events streamed as they happen; the result follows the last one.

        `async with orch.stream(goal) as events: async for event in events: ...`, then
        `events.result`. Leaving the block before the run has ended cancels it (cleanly: its
        partial result is journaled and becomes `events.result`).
        """

        async def start(feed: EventSink, token: CancelToken) -> RunResult:
            begin = self._new_run(goal, context, plan)
            return await self._serve(begin, _new_run_id(), token, (feed,))

        return RunStream(start, cancel)

    async def plan(self, goal: str, *, context: str = "") -> PlanPreview:
        """Plan `goal` and estimate what running it may cost; no task runs, nothing is saved.

        Raises `PlanValidationError` when the planner gives no valid plan within the repairs.
        """
        async with self._open(_new_run_id()) as engine:
            return await engine.plan(goal, workdir=self.workdir, context=context)

    async def resume(self, run_id: str, *, cancel: CancelToken | None = None) -> RunResult:
        """Continue an interrupted (or cancelled) run from its journal and return its result.

        Tasks that succeeded are never run again; attempts that were in flight run again with a
        new attempt number; a complete plan is not planned again; usage and cost carry over.
        Raises `JournalError` when the run root has no such run.
        """

        def start(engine: Engine, rid: RunId) -> Awaitable[RunResult]:
            return engine.resume(rid)

        return await self._serve(start, RunId(run_id), cancel)

    def cancel(self) -> None:
        """Cancel every run in progress; each returns a partial result with status cancelled.

        Runs still starting their backend count as in progress. Called while no run is going,
        it cancels the next run as it starts, so a Ctrl-C that lands before a run begins is
        not lost. For one run only, pass `run(goal, cancel=CancelToken())`.
        """
        if not self._running:
            self._cancel_next = True
        for token in tuple(self._running):
            token.cancel()

    def _new_run(self, goal: str, context: str, plan: Plan | None) -> _Start:
        def start(engine: Engine, run_id: RunId) -> Awaitable[RunResult]:
            return engine.run(goal, workdir=self.workdir, context=context, plan=plan)

        return start

    async def _serve(
        self,
        start: _Start,
        run_id: RunId,
        cancel: CancelToken | None,
        sinks: Sequence[EventSink] = (),
    ) -> RunResult:
        """Open the backend and run `start` under this run's cancel scope."""
        own = CancelToken()
        if self._cancel_next:
            self._cancel_next = False
            own.cancel()
        self._running.add(own)
        tokens = (own,) if cancel is None else (own, cancel)
        try:
            async with self._open(run_id, sinks) as engine:
                with cancel_scope(tokens):
                    return await start(engine, run_id)
                # The scope caught the cancel: the engine journaled the run as cancelled.
                return _cancelled_result(engine.config, run_id)
        finally:
            self._running.discard(own)

    @asynccontextmanager
    async def _open(self, run_id: RunId, sinks: Sequence[EventSink] = ()) -> AsyncGenerator[Engine]:
        """An engine on the given client, or on the backend the settings choose (kept open).

        `settings.replay` answers from a cassette instead of a backend (a `ReplayModel` client
        brings its recorded ladder); `settings.record` records every call of the run to one.
        """
        settings = self._settings
        if settings.record is not None and settings.replay is not None:
            raise ConfigError("record and replay are both set: a run records or replays; unset one")
        client = self._client
        if client is None and settings.replay is not None:
            client = ReplayModel.load(settings.replay)
        if client is not None:
            replay = client if isinstance(client, ReplayModel) else None
            ladder = DEFAULT_LADDER if replay is None else replay.ladder
            options = self._role_options or (None if replay is None else replay.role_options)
            if settings.record is not None:
                ran = self._engine_config(ladder).ladder
                client = RecordingClient(client, settings.record, ladder=ran, role_options=options)
            yield self._engine(client, ladder, options, run_id, sinks)
            return
        async with open_backend(settings) as backend:
            self.notice = backend.notice
            options = self._role_options or backend.role_options
            client = backend.client
            if settings.record is not None:
                ran = self._engine_config(backend.ladder).ladder
                client = RecordingClient(client, settings.record, ladder=ran, role_options=options)
            yield self._engine(client, backend.ladder, options, run_id, sinks)

    def _engine_config(self, ladder: tuple[TierSpec, ...]) -> EngineConfig:
        """The run's config: explicit arguments, then `config`, then settings and backend."""
        base, default, settings = self._config, EngineConfig(), self._settings
        if self._ladder is None and base.ladder == default.ladder:
            base = replace(base, ladder=ladder)
        elif self._ladder is not None:
            base = replace(base, ladder=self._ladder)
        limits = self._limits or base.limits
        if self._limits is None and base.limits == default.limits:
            limits = Limits(max_parallel=settings.max_parallel)
        root = base.run_root if base.run_root != default.run_root else settings.run_root
        durability = base.journal_durability
        if durability == default.journal_durability:
            durability = settings.journal_durability
        return replace(
            base,
            limits=limits,
            run_root=root if root.is_absolute() else self.workdir / root,
            journal_verify=base.journal_verify or settings.journal_verify,
            journal_durability=durability,
        )

    def _engine(
        self,
        client: ModelClient,
        ladder: tuple[TierSpec, ...],
        options: RoleOptions | None,
        run_id: RunId,
        sinks: Sequence[EventSink] = (),
    ) -> Engine:
        from .agents.planner import DagPlanner
        from .agents.reviewer import BatchReviewer
        from .agents.synthesizer import AnswerSynthesizer
        from .agents.worker import ExecutorWorker

        opts = options or RoleOptions()
        planner, worker, reviewer, synthesizer = self._roles
        config = self._engine_config(ladder)
        planner, worker, reviewer, synthesizer = with_generation(
            (
                planner or DagPlanner(compact=opts.compact),
                worker or ExecutorWorker(compact=opts.compact),
                reviewer or BatchReviewer(),
                synthesizer or AnswerSynthesizer(),
            ),
            self._generation,
            base=opts,
            ladder=config.ladder,
            planner_tier=config.planner_tier,
        )
        if self._throttle is None:
            self._throttle = Throttle(
                config.retry,
                ceiling=client.capabilities.parallel_requests,
                rate_limits=config.rate_limits,
            )
        return Engine(
            client,
            planner=planner,
            worker=worker,
            reviewer=reviewer,
            synthesizer=synthesizer,
            tools=self.tools,
            config=config,
            throttle=self._throttle,
            sinks=(*self.sinks, *sinks),
            check_runner=functools.partial(shell_check, shell_sandbox=self._settings.shell_sandbox),
            approve=self._approve,
            on_plan=self._on_plan,
            new_run_id=lambda: run_id,
        )


def _new_run_id() -> RunId:
    """Chosen here, not by the engine, so a run a cancel scope stopped can be read back."""
    return RunId(uuid.uuid4().hex[:12])


def _cancelled_result(config: EngineConfig, run_id: RunId) -> RunResult:
    """The result of a run a cancel scope stopped, as its journal has it.

    The engine writes result.json as it journals the cancel; a cancel that came before the run
    reached its journal's end (a resume still clearing old copies) leaves only the journal.
    """
    run_dir = Path(config.run_root) / run_id
    if (run_dir / "result.json").is_file():
        store = RunStore(Path(config.run_root))
        try:
            return store.load_result(run_id)
        finally:
            store.close()
    state = read_state(run_dir)
    return build_result(state, status="cancelled", ladder=config.ladder, run_dir=str(run_dir))


def _report_skipped(loaded: LoadedTools) -> None:
    """Log each skipped plugin once, where it is handled (the run goes on without it)."""
    for failure in loaded.errors:
        _log.warning(
            "tool_plugin_skipped",
            entry_point=failure.entry_point,
            target=failure.target,
            distribution=failure.distribution,
            error=failure.error,
        )


def _otel_sinks(settings: Settings) -> tuple[EventSink, ...]:
    """An `OTelSink` on the global tracer provider when settings ask for tracing."""
    if not settings.otel:
        return ()
    try:
        from .otel import OTelSink
    except ConfigError as exc:
        raise ConfigError(
            f"ORCH_OTEL is set (Settings.otel) but {exc}; or unset ORCH_OTEL"
        ) from exc
    return (OTelSink(),)


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

    sandbox = sandbox_for(shell_sandbox)
    result = await run_acceptance_check(command, workdir, timeout_s, run_dir, sandbox=sandbox)
    status = "timed out" if result.timed_out else f"exit code {result.exit_code}"
    output = f"{status}\n{result.stdout}\n{result.stderr}".strip()
    return CheckOutcome(
        passed=result.exit_code == 0 and not result.timed_out, output=output[-4000:]
    )
