"""The coder agent: implements a described change across files, with tests, then runs the suite.

The plan fans out one task per file or module where the change allows, each proving its part
with its own tests; a final task depending on all of them runs the whole suite, and the
`on_plan` gate adds that task when the planner left it out.

Run with: `orchestrator agent coder "Add a discount() function ..." --workdir path/to/repo`
(or `python -m orchestrator.example_agents.coder ...`)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from orchestrator.agent_kit import Agent, AgentJob, CheckRun
from orchestrator.cli_agents import agent_main
from orchestrator.events import PatchApplied, WorkspaceMerged
from orchestrator.journal import JOURNAL_FILE, read_events
from orchestrator.models import (
    AcceptanceCheck,
    Failed,
    Plan,
    RunResult,
    Skipped,
    Succeeded,
    TaskId,
    TaskSpec,
    Unreviewed,
)
from orchestrator.preview import Accept, EditPlan, OnPlan, PlanDecision, PlanPreview

DEFAULT_TEST_COMMAND = "python -m pytest -q"
SUITE_TASK = "suite"
"""Id the final whole-suite task gets when the gate adds it."""
SUITE_TIMEOUT_S = 600.0
"""The whole suite may take longer than a task's own tests (the check default is 60 s)."""
SUITE_TOOLS = ("read_file", "list_dir", "search_text", "apply_patch", "shell")
MAX_LISTED_FILES = 200
"""The planner sees at most this many source files (a big repo still plans on a page)."""
_SKIPPED_DIRS = frozenset({"node_modules", "venv", "build", "dist", "__pycache__"})
_SOURCE_SUFFIXES = frozenset({".py", ".pyi", ".toml", ".cfg", ".ini", ".md"})

GOAL = """\
Implement this change in the repository, with tests:

{change}

Plan it as follows:
- One task per file or module the change touches. Tasks on different modules do not depend on \
each other, so they run in parallel; add a dependency only where one module needs another's \
new code.
- Each of these tasks edits its module with apply_patch, adds or updates the tests for what it \
changed, and has an acceptance check that runs those tests, e.g. `{test_command} tests/test_x.py`.
- A final task with id "{suite}" depends on every other task: it runs the whole suite with \
`{test_command}`, fixes whatever the change broke, and its acceptance check is \
`{test_command}`.
"""


def arguments(parser: argparse.ArgumentParser) -> None:
    """The change in words, and how to run the suite."""
    parser.add_argument("change", nargs="+", help="the change to make, described in words")
    parser.add_argument(
        "--test-command",
        default=DEFAULT_TEST_COMMAND,
        help=f"runs the whole test suite (default: {DEFAULT_TEST_COMMAND})",
    )


def prepare(args: argparse.Namespace, workdir: Path) -> AgentJob:
    """The goal, the repository's source files as context, the suite as the final check."""
    change = " ".join(args.change).strip()
    test_command = str(args.test_command).strip() or DEFAULT_TEST_COMMAND
    files = list(_source_files(workdir))
    listed = "\n".join(f"- {path}" for path in files[:MAX_LISTED_FILES])
    more = len(files) - MAX_LISTED_FILES
    if more > 0:
        listed += f"\n- ... and {more} more"
    context = f"Test command: {test_command}\nSource files:\n{listed or '(none)'}"
    return AgentJob(
        goal=GOAL.format(change=change, test_command=test_command, suite=SUITE_TASK),
        context=context,
        checks=(AcceptanceCheck(command=test_command, timeout_s=SUITE_TIMEOUT_S),),
        on_plan=suite_gate(test_command),
        facts={"change": change, "test_command": test_command},
    )


def _source_files(root: Path) -> Iterator[str]:
    """Source and config files under `root`, sorted, without hidden, vendored or built folders."""
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".") and d not in _SKIPPED_DIRS and not d.endswith(".egg-info")
        )
        base = Path(folder).relative_to(root)
        for name in sorted(names):
            if Path(name).suffix in _SOURCE_SUFFIXES:
                yield (base / name).as_posix()


def suite_gate(test_command: str) -> OnPlan:
    """An `on_plan` gate: the plan ends with a task depending on all others that runs the suite.

    A final task that depends on every other one keeps its place and gets the suite as its
    check; without one, a `suite` task depending on every task nothing else waits for is added.
    """

    def gate(preview: PlanPreview) -> PlanDecision:
        plan = with_suite_task(preview.plan, test_command)
        return Accept() if plan is preview.plan else EditPlan(plan)

    return gate


def with_suite_task(plan: Plan, test_command: str) -> Plan:
    """`plan` itself when its final task already runs the suite, else a plan where one does."""
    suite = AcceptanceCheck(command=test_command, timeout_s=SUITE_TIMEOUT_S)
    final = _final_task(plan.tasks)
    if final is not None:
        if final.check is not None and final.check.command == test_command:
            return plan
        tasks = tuple(replace(t, check=suite) if t.id == final.id else t for t in plan.tasks)
        return replace(plan, tasks=tasks)
    waited_for = {dep for t in plan.tasks for dep in t.deps}
    ids = {t.id for t in plan.tasks}
    task_id = next(
        TaskId(name) for n in range(1, len(ids) + 2) if (name := _suite_id(n)) not in ids
    )
    added = TaskSpec(
        id=task_id,
        instruction=(
            f"Run the whole test suite with `{test_command}`. If anything fails, find the cause "
            "in the changes just made, fix it with apply_patch and run the suite again."
        ),
        deps=tuple(t.id for t in plan.tasks if t.id not in waited_for),
        tools=SUITE_TOOLS,
        produces="the suite's outcome, and any fix made",
        check=suite,
    )
    return replace(plan, tasks=(*plan.tasks, added))


def _suite_id(n: int) -> str:
    return SUITE_TASK if n == 1 else f"{SUITE_TASK}_{n}"


def _final_task(tasks: tuple[TaskSpec, ...]) -> TaskSpec | None:
    """The task every other task leads to through its dependencies, if there is one."""
    deps = {t.id: t.deps for t in tasks}
    for candidate in reversed(tasks):
        if _ancestors(candidate.id, deps) >= deps.keys() - {candidate.id}:
            return candidate
    return None


def _ancestors(task_id: TaskId, deps: Mapping[TaskId, tuple[TaskId, ...]]) -> set[TaskId]:
    seen: set[TaskId] = set()
    todo = list(deps.get(task_id, ()))
    while todo:
        dep = todo.pop()
        if dep not in seen:
            seen.add(dep)
            todo.extend(deps.get(dep, ()))
    return seen


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangedFile:
    """A file the run changed in the workspace, and the tasks that changed it."""

    path: str
    tasks: tuple[TaskId, ...]


def changed_files(result: RunResult) -> tuple[ChangedFile, ...]:
    """What the accepted tasks changed, from the run's journal, by path.

    A task that worked in its own copy counts by what its merge brought into the workspace (so
    files its shell commands wrote count too); one without a copy by the patches it applied.
    """
    if result.run_dir is None or not (Path(result.run_dir) / JOURNAL_FILE).is_file():
        return ()
    accepted = {r.task_id for r in result.succeeded}
    merged: dict[TaskId, set[str]] = {}
    patched: dict[TaskId, set[str]] = {}
    for event in read_events(Path(result.run_dir)):
        if isinstance(event, WorkspaceMerged):
            merged.setdefault(event.task_id, set()).update(event.merged)
        elif isinstance(event, PatchApplied):
            patched.setdefault(event.task_id, set()).update(f.path for f in event.files)
    by_path: dict[str, list[TaskId]] = {}
    for task_id in sorted(accepted):
        for path in merged.get(task_id, patched.get(task_id, set())):
            by_path.setdefault(path, []).append(task_id)
    return tuple(ChangedFile(path=p, tasks=tuple(by_path[p])) for p in sorted(by_path))


def report(job: AgentJob, result: RunResult, checks: tuple[CheckRun, ...]) -> str:
    """The change, the suite's outcome, the files changed and every task's result, in Markdown."""
    lines = [f"# Coder: {job.facts.get('change', job.goal)}", ""]
    lines += [f"Run: {result.status}."] + [
        f"Suite `{c.check.command}`: {'passed' if c.outcome.passed else 'FAILED'}." for c in checks
    ]
    if not checks:
        lines.append("Suite: not run.")
    files = changed_files(result)
    lines += ["", "## Files changed", ""]
    lines += [f"- `{f.path}` ({', '.join(f.tasks)})" for f in files] or ["(none)"]
    lines += ["", "## Tasks", ""]
    lines += list(_task_lines(result))
    failing = [c for c in checks if not c.outcome.passed]
    for check in failing:
        lines += ["", f"## Suite output: `{check.check.command}`", "", "```"]
        lines += [check.outcome.output.strip()[-3000:], "```"]
    return "\n".join(lines)


def _task_lines(result: RunResult) -> Iterable[str]:
    order = [t.id for t in result.plan.tasks] if result.plan else []
    order += [t for t in result.results if t not in order]
    for task_id in order:
        match result.results.get(task_id):
            case Succeeded(summary=summary) | Unreviewed(summary=summary) as done:
                yield f"- {task_id}: {done.kind} ({done.tier}): {summary.strip()}"
            case Failed(error=error):
                yield f"- {task_id}: failed: {error.message.strip()[:300]}"
            case Skipped(reason=reason):
                yield f"- {task_id}: skipped: {reason}"
            case None:
                yield f"- {task_id}: not run"


AGENT = Agent(
    name="coder",
    summary="Implement a described change across files with tests; a final task runs the suite.",
    prepare=prepare,
    arguments=arguments,
    report=report,
)
"""Registered as the `coder` entry point of `orchestrator.agents`."""


if __name__ == "__main__":
    sys.exit(agent_main(AGENT))
