"""Running an `Agent`: its job through an `Orchestrator` with its defaults, then its checks."""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio

from .agent_kit import Agent, AgentJob, AgentOutcome, CheckRun
from .app import Orchestrator, shell_check
from .cancel import CancelToken, cancel_scope
from .models import RunId, RunResult, RunStatus, Usage
from .run import EngineConfig
from .settings import Settings


def agent_orchestrator(
    agent: Agent, job: AgentJob, *, workdir: Path, **kwargs: Any
) -> Orchestrator:
    """An `Orchestrator` with the agent's tools, review, limits and planner tier.

    `kwargs` go to `Orchestrator` and win over the agent's defaults (e.g. `client=` in tests).
    """
    config: EngineConfig = kwargs.pop("config", None) or EngineConfig()
    if agent.planner_tier is not None and config.planner_tier is None:
        config = replace(config, planner_tier=agent.planner_tier)
    defaults: dict[str, Any] = {
        "tools": agent.tools,
        "builtin_tools": agent.builtin_tools,
        "review": agent.review,
        "limits": agent.limits,
        "on_plan": job.on_plan,
    }
    return Orchestrator(workdir=workdir, config=config, **{**defaults, **kwargs})


async def run_agent(
    agent: Agent,
    args: argparse.Namespace,
    *,
    workdir: str | Path,
    cancel: CancelToken | None = None,
    **kwargs: Any,
) -> AgentOutcome:
    """Prepare the agent's job in `workdir`, run it, run its final checks and write its report.

    `kwargs` go to `Orchestrator` (`client=`, `settings=`, `sinks=`, ...). A job with nothing to
    do starts no run; `cancel` also stops `prepare` (the outcome then says nothing ran).
    """
    root = Path(os.path.abspath(workdir))  # noqa: ASYNC240 (no I/O: a path computation)
    with cancel_scope(() if cancel is None else (cancel,)) as preparing:
        job = await agent.job(args, root)
    if preparing.cancelled_caught:
        return _without_run(agent.name, "cancelled", "cancelled while preparing: nothing ran")
    if job.nothing_to_do is not None:
        return _without_run(job.goal, "completed", job.nothing_to_do)
    orch = agent_orchestrator(agent, job, workdir=root, **kwargs)
    result = await orch.run(job.goal, context=job.context, cancel=cancel)
    checks = await final_checks(job, result, workdir=root, settings=kwargs.get("settings"))
    report = (agent.report or default_report)(job, result, checks)
    if job.output is not None:
        target = root / job.output
        await anyio.Path(target.parent).mkdir(parents=True, exist_ok=True)
        await anyio.Path(target).write_text(report.rstrip() + "\n", encoding="utf-8")
    return AgentOutcome(result=result, checks=checks, report=report, notice=orch.notice)


def _without_run(goal: str, status: RunStatus, report: str) -> AgentOutcome:
    """The outcome of an invocation that started no run: nothing planned, nothing spent."""
    result = RunResult(
        run_id=RunId(""),
        goal=goal,
        status=status,
        answer=report,
        plan=None,
        results={},
        usage=Usage(),
    )
    return AgentOutcome(result=result, checks=(), report=report)


async def final_checks(
    job: AgentJob, result: RunResult, *, workdir: Path, settings: Settings | None = None
) -> tuple[CheckRun, ...]:
    """The job's checks, one after another, in the same sandbox as the tasks' checks."""
    if not job.checks or result.status == "cancelled":
        return ()
    sandbox = (settings or Settings.from_env()).shell_sandbox
    runs: list[CheckRun] = []
    with tempfile.TemporaryDirectory(prefix="orch-agent-check-") as scratch:
        run_dir = Path(result.run_dir) if result.run_dir else Path(scratch)
        for check in job.checks:
            outcome = await shell_check(
                check.command, workdir, check.timeout_s, run_dir, shell_sandbox=sandbox
            )
            runs.append(CheckRun(check=check, outcome=outcome))
    return tuple(runs)


def default_report(job: AgentJob, result: RunResult, checks: tuple[CheckRun, ...]) -> str:
    """The run's answer, then one line per final check."""
    lines = [result.answer.rstrip()]
    if checks:
        lines += ["", "Final checks:"]
        lines += [
            f"- {'passed' if c.outcome.passed else 'FAILED'}: {c.check.command}" for c in checks
        ]
    return "\n".join(lines)
