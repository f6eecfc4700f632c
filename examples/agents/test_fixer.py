"""test-fixer: run the suite, plan one parallel task per group of failing tests, prove each fix.

`prepare` runs the suite once in the sandbox and groups its failures by test file (pytest's JUnit
XML, see `pytest_failures`); the plan gate gives every fix task an acceptance check re-running
its group's tests; the report says which groups were fixed from the run's results, not from prose.

Run with: `python -m orchestrator.example_agents.test_fixer --workdir path/to/repo`
"""

from __future__ import annotations

import argparse
import re
import secrets
import shlex
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from xml.etree.ElementTree import ParseError

import anyio

from orchestrator.agent_kit import Agent, AgentJob, CheckRun
from orchestrator.app import shell_check
from orchestrator.cli_agents import agent_main
from orchestrator.errors import ConfigError
from orchestrator.models import (
    AcceptanceCheck,
    Failed,
    Plan,
    RunResult,
    Skipped,
    Succeeded,
    TaskSpec,
    Unreviewed,
)
from orchestrator.preview import Accept, EditPlan, OnPlan, PlanDecision, PlanPreview
from orchestrator.settings import Settings

from .pytest_failures import (
    JUNIT_OPTIONS,
    FailedTest,
    FailureGroup,
    group_failures,
    is_pytest,
    parse_junit,
    rerun_command,
)

DEFAULT_COMMAND = "python -m pytest -q"
_OUTPUT_TAIL = 3_000
"""The end of the suite's output the planner sees when pytest gave no report to parse."""


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--command", default=DEFAULT_COMMAND, help=f"the test suite (default: {DEFAULT_COMMAND})"
    )
    parser.add_argument(
        "--max-groups",
        type=int,
        default=8,
        help="at most this many parallel fix tasks; further test files join the last group",
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds the suite (or a group) may take"
    )


async def prepare(args: argparse.Namespace, workdir: Path) -> AgentJob:
    """Run the suite once; the job fixes its failure groups, or says there is nothing to fix."""
    command: str = args.command
    timeout_s: float = args.timeout
    try:
        runs_pytest = is_pytest(command)
    except ValueError as exc:
        raise ConfigError(f"--command {command!r} does not parse: {exc}") from exc
    passed, output, failures = await _run_suite(command, workdir, timeout_s, runs_pytest)
    goal = (
        f"Make the test suite (`{command}`) pass by fixing the code under test; never edit or "
        "weaken the tests."
    )
    if passed:
        return AgentJob(
            goal=goal, nothing_to_do=f"The test suite passes (`{command}`): nothing to fix."
        )
    if failures:
        groups = group_failures(failures, max_groups=args.max_groups)
    else:  # not pytest, or it stopped before reporting: one group, the whole suite
        tail = FailedTest(node_id="", file="", message="the suite failed", traceback=output)
        groups = (FailureGroup(key="g1", files=(), failures=(tail,)),)
    return AgentJob(
        goal=goal,
        context=_context(command, groups),
        checks=(AcceptanceCheck(command=command, timeout_s=timeout_s),),
        on_plan=plan_gate(command, groups, timeout_s=timeout_s),
        facts={"command": command, "groups": groups},
    )


async def _run_suite(
    command: str, workdir: Path, timeout_s: float, runs_pytest: bool
) -> tuple[bool, str, tuple[FailedTest, ...]]:
    """(passed, the output's tail, the failures pytest reported) of one sandboxed run."""
    report = anyio.Path(workdir / f".test-fixer-{secrets.token_hex(4)}.xml")
    if runs_pytest:  # the report goes in the workspace: the sandbox may write nowhere else
        options = (*JUNIT_OPTIONS, f"--junitxml={shlex.quote(report.name)}")
        command = " ".join((command, *options))
    sandbox = Settings.from_env().shell_sandbox
    try:
        with tempfile.TemporaryDirectory(prefix="orch-test-fixer-") as scratch:
            outcome = await shell_check(
                command, workdir, timeout_s, Path(scratch), shell_sandbox=sandbox
            )
        xml = await report.read_text(encoding="utf-8") if await report.is_file() else ""
    finally:
        await report.unlink(missing_ok=True)
    try:
        failures = parse_junit(xml) if xml else ()
    except ParseError:
        failures = ()
    return outcome.passed, outcome.output[-_OUTPUT_TAIL:], failures


def _context(command: str, groups: Sequence[FailureGroup]) -> str:
    """What the planner is told: the task shape wanted, then each group's tests and tracebacks."""
    count = sum(len(g.failures) for g in groups)
    lines = [
        f"`{command}` fails: {count} failing test(s) in {len(groups)} group(s).",
        "",
        "Plan one task per group, all independent (no deps between them), with the id "
        "fix_<group> (fix_g1, fix_g2, ...) and the tools read_file, search_text, apply_patch and "
        "shell. Each task finds the cause in the code under test and fixes it with apply_patch; "
        "it never edits or weakens the tests. Give each task the check shown for its group.",
    ]
    for group in groups:
        where = ", ".join(group.files) or "the whole suite"
        lines += ["", f"## {group.key}: {where} ({len(group.failures)} failing)"]
        lines += [f"check: `{rerun_command(command, (group,))}`"]
        for failure in group.failures:  # the message is the traceback's last `E` lines
            lines += ["", f"### {failure.node_id or command}"]
            lines += ["```", failure.traceback or failure.message, "```"]
    return "\n".join(lines)


def addressed(task: TaskSpec, groups: Sequence[FailureGroup]) -> tuple[FailureGroup, ...]:
    """The groups a task fixes: those its id or instruction names (`g2`), else by file name."""
    text = f"{task.id}\n{task.instruction}"
    named = tuple(g for g in groups if re.search(rf"(?<![A-Za-z0-9]){g.key}(?![A-Za-z0-9])", text))
    if named:
        return named
    return tuple(g for g in groups if any(f in task.instruction for f in g.files))


def plan_gate(command: str, groups: Sequence[FailureGroup], *, timeout_s: float) -> OnPlan:
    """An `on_plan` giving each fix task that has no check one re-running its groups' tests."""

    def decide(preview: PlanPreview) -> PlanDecision:
        tasks = tuple(_checked(task) for task in preview.plan.tasks)
        if tasks == preview.plan.tasks:
            return Accept()
        return EditPlan(Plan(goal=preview.plan.goal, tasks=tasks, rationale=preview.plan.rationale))

    def _checked(task: TaskSpec) -> TaskSpec:
        mine = addressed(task, groups)
        if task.check is not None or not mine:
            return task
        check = AcceptanceCheck(command=rerun_command(command, mine), timeout_s=timeout_s)
        return replace(task, check=check)

    return decide


def report(job: AgentJob, result: RunResult, checks: tuple[CheckRun, ...]) -> str:
    """Which groups were fixed (group → task → its check passed) and which not, and the suite."""
    groups: tuple[FailureGroup, ...] = job.facts["groups"]
    tasks = result.plan.tasks if result.plan is not None else ()
    fixed: list[str] = []
    unfixed: list[str] = []
    for group in groups:
        mine = [t for t in tasks if group in addressed(t, groups)]
        proof = next((t.check for t in mine if _proved(t, result) and t.check), None)
        if proof is not None:
            task_id = next(t.id for t in mine if t.check is proof)
            fixed.append(f"- {_label(group)} → task {task_id} → check passed: `{proof.command}`")
        else:
            why = "; ".join(_why_not(t, result) for t in mine) or "no task of the plan addressed it"
            unfixed.append(f"- {_label(group)} → {why}")
    lines = [f"test-fixer: {len(fixed)} of {len(groups)} failure group(s) fixed."]
    if fixed:
        lines += ["", "Fixed:", *fixed]
    if unfixed:
        lines += ["", "Not fixed:", *unfixed]
    lines += ["", *_suite_lines(job, checks)]
    if result.run_id:
        lines.append(f"Run {result.run_id}: {result.status}.")
    return "\n".join(lines)


def _label(group: FailureGroup) -> str:
    tests = ", ".join(f.node_id for f in group.failures if f.node_id) or "the whole suite"
    return f"{group.key} ({tests})"


def _proved(task: TaskSpec, result: RunResult) -> bool:
    """Accepted with a check: the engine accepts a task with a check only once it passed."""
    return task.check is not None and isinstance(result.results.get(task.id), Succeeded)


def _why_not(task: TaskSpec, result: RunResult) -> str:
    """Why a task addressing a group does not prove it fixed, from its result."""
    match result.results.get(task.id):
        case Succeeded():
            return f"task {task.id} succeeded without a check"
        case Failed(error=error):
            first = error.message.strip().splitlines()[0] if error.message.strip() else ""
            return f"task {task.id} failed: {error.type}: {first}"
        case Skipped(reason=reason) | Unreviewed(reason=reason):
            return f"task {task.id} {result.results[task.id].kind}: {reason}"
        case None:
            return f"task {task.id} did not finish"


def _suite_lines(job: AgentJob, checks: tuple[CheckRun, ...]) -> list[str]:
    command: str = job.facts["command"]
    if not checks:
        return [f"Whole suite (`{command}`): not run again (the run was cancelled)."]
    return [
        f"Whole suite (`{c.check.command}`): {'passed' if c.outcome.passed else 'FAILED'}."
        for c in checks
    ]


AGENT = Agent(
    name="test-fixer",
    summary="Fix failing tests: one parallel task per failure group, each proven by its tests.",
    prepare=prepare,
    arguments=_arguments,
    report=report,
)
"""Registered as `test-fixer` under the `orchestrator.agents` entry points."""


if __name__ == "__main__":
    sys.exit(agent_main(AGENT))
