"""Example agents: a goal, tools, acceptance checks and ladder defaults, runnable from the shell.

An `Agent` is a small value in its own module; built-in agents and third-party ones register the
same way, under the `orchestrator.agents` entry-point group, so `orchestrator agents list` shows
both and `orchestrator agent NAME` runs either. The engine never imports this module.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Literal

from .models import AcceptanceCheck, Limits, RunResult
from .preview import OnPlan
from .toolkit import CheckOutcome, Tool

AGENT_GROUP = "orchestrator.agents"
"""Entry-point group an installed package registers its `Agent` values under."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentJob:
    """What one invocation asks of the engine, built from the arguments and the workspace."""

    goal: str
    context: str = ""
    """What the planner should know that the goal does not say (e.g. the failing tests found)."""
    checks: tuple[AcceptanceCheck, ...] = ()
    """Run in the sandbox on the workspace after the run; their outcomes join the report (e.g.
    the whole test suite for the test-fixer)."""
    on_plan: OnPlan | None = None
    """Sees the plan before anything runs (e.g. gives every task its tests as a check)."""
    output: Path | None = None
    """Where `run_agent` writes the report too (e.g. the explainer's Markdown), relative to the
    workdir; None: the report is only returned (and printed by the CLI)."""
    facts: dict[str, Any] = field(default_factory=lambda: {})
    """What `prepare` learned that `report` needs (e.g. the failure groups)."""
    nothing_to_do: str | None = None
    """Set when `prepare` found the work already done (e.g. the suite passes): `run_agent` then
    starts no run and calls no model, and this is the report."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckRun:
    """One of the job's final checks and how it went."""

    check: AcceptanceCheck
    outcome: CheckOutcome


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentOutcome:
    """A finished invocation: the run, the final checks and the agent's report in words."""

    result: RunResult
    """The run's result; with no run (nothing to do, or cancelled while preparing) an empty one
    with no run id."""
    checks: tuple[CheckRun, ...]
    report: str
    notice: str | None = None
    """What the backend wants the user told (e.g. that the embedded model is a toy)."""

    @property
    def ok(self) -> bool:
        """The run completed and every final check passed."""
        return self.result.status == "completed" and all(c.outcome.passed for c in self.checks)


Prepare = Callable[[argparse.Namespace, Path], AgentJob | Awaitable[AgentJob]]
"""(parsed arguments, workdir) → the job; may run commands in the workspace to learn it."""
Report = Callable[[AgentJob, RunResult, tuple[CheckRun, ...]], str]
"""(job, result, final checks) → the report the user reads."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Agent:
    """One runnable agent: how to turn arguments into a job, and how to run and report it."""

    name: str
    summary: str
    """One line for `orchestrator agents list`."""
    prepare: Prepare
    arguments: Callable[[argparse.ArgumentParser], None] = lambda _parser: None
    """Adds the agent's own command-line arguments (after `orchestrator agent NAME`)."""
    report: Report | None = None
    """None: the run's answer, then the final checks."""
    tools: Sequence[Tool | Callable[..., Any]] = ()
    """Tools beyond the built-ins (or instead of them, with `builtin_tools=False`)."""
    builtin_tools: bool = True
    """False for read-only agents: they get only `tools` (e.g. the read-only file tools)."""
    review: Literal["all", "none"] = "all"
    limits: Limits | None = None
    """Ladder defaults: caps and parallelism; None keeps the settings' defaults."""
    planner_tier: str | None = None
    """Tier that plans and reviews; None means the top of the ladder."""

    def parse(self, argv: Sequence[str] = ()) -> argparse.Namespace:
        """The agent's arguments from a command line (for calling an agent from Python)."""
        parser = argparse.ArgumentParser(prog=f"orchestrator agent {self.name}")
        self.arguments(parser)
        return parser.parse_args(list(argv))

    async def job(self, args: argparse.Namespace, workdir: Path) -> AgentJob:
        """`prepare`, awaited when it is async."""
        job = self.prepare(args, workdir)
        return await job if inspect.isawaitable(job) else job


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentFailure:
    """An installed agent that could not be loaded (skipped and reported, never fatal)."""

    entry_point: str
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedAgents:
    agents: tuple[Agent, ...]
    """By name; a name registered twice keeps the first."""
    errors: tuple[AgentFailure, ...]


def load_agents() -> LoadedAgents:
    """Every `Agent` registered under `AGENT_GROUP` (ours included), sorted by name."""
    found: dict[str, Agent] = {}
    errors: list[AgentFailure] = []
    for point in entry_points(group=AGENT_GROUP):
        try:
            value = point.load()
        except Exception as exc:  # a broken plugin must not take the listing down
            errors.append(
                AgentFailure(entry_point=point.name, error=f"{type(exc).__name__}: {exc}")
            )
            continue
        if not isinstance(value, Agent):
            errors.append(
                AgentFailure(entry_point=point.name, error=f"not an Agent: {type(value).__name__}")
            )
        elif value.name in found:
            errors.append(AgentFailure(entry_point=point.name, error=f"duplicate {value.name!r}"))
        else:
            found[value.name] = value
    agents = tuple(found[name] for name in sorted(found))
    return LoadedAgents(agents=agents, errors=tuple(errors))
