"""The repo-explainer agent (read-only): maps a repository into a Markdown report.

`prepare` reads the top level (folders, pyproject scripts, test setup) so the plan fans out one
task per package or folder, each reading only with the read-only file tools; the report puts
the top level's facts and each task's findings together, and nothing else.

Run with: `orchestrator agent repo-explainer --workdir path/to/repo` (writes REPO_MAP.md there)
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, cast

from orchestrator.agent_kit import Agent, AgentJob, CheckRun
from orchestrator.cli_agents import agent_main
from orchestrator.models import (
    Failed,
    Plan,
    RunResult,
    Skipped,
    Succeeded,
    TaskId,
    TaskResult,
    TaskSpec,
    Unreviewed,
)
from orchestrator.preview import Accept, EditPlan, OnPlan, PlanDecision, PlanPreview
from orchestrator.tools.files import file_tools

DEFAULT_OUTPUT = "REPO_MAP.md"
READ_ONLY_TOOLS = tuple(t.name for t in file_tools())
"""read_file, list_dir, search_text: what every task may use, and all the agent has."""
MAX_FOLDERS = 24
"""More top-level folders than this are listed but not given a task each (a plan stays small)."""
_JUNK = frozenset({"node_modules", "venv", "build", "dist", "__pycache__", "site-packages"})
_NOT_ID = re.compile(r"[^a-z0-9]+")

GOAL = """\
Map the repository{named} for a newcomer: what each part is for, its entry points, and how to \
run and test it.

Plan exactly one task per folder listed under "Folders" in the context, with the task id given \
there, no dependencies between them, and only the tools {tools}: the tasks only read, they never \
change a file. Each task reads its folder (list_dir, then read_file or search_text on what \
matters) and reports:
- summary: what the folder is for, in one or two sentences, from what it read;
- outputs: "modules" (its main files and what each defines), "entry_points" (commands, \
`__main__` modules, CLIs found there, or "none"), "tests" (how it is tested, or "none").
State only what the files show.
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Folder:
    """One top-level folder (or a package under src/) and the task that maps it."""

    path: str
    """Relative to the repository root, `/`-separated."""
    task_id: str
    kind: Literal["package", "folder"]
    """package: it has an `__init__.py`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RepoFacts:
    """What the top level of the repository says, read before anything is planned."""

    name: str
    folders: tuple[Folder, ...]
    unmapped: tuple[str, ...] = ()
    """Folders past `MAX_FOLDERS`: listed in the structure, not given a task."""
    files: tuple[str, ...] = ()
    """Top-level files."""
    scripts: tuple[tuple[str, str], ...] = ()
    """(command, module:function) from pyproject's [project.scripts] and [project.gui-scripts]."""
    entry_points: tuple[tuple[str, str, str], ...] = ()
    """(group, name, target) from pyproject's [project.entry-points]."""
    main_modules: tuple[str, ...] = ()
    """Packages with a `__main__.py`: runnable as `python -m <package>`."""
    test_command: str | None = None
    """How the tests run, when the repository shows it (pytest config or a tests folder)."""
    has_pyproject: bool = False


def arguments(parser: argparse.ArgumentParser) -> None:
    """Where the report goes."""
    parser.add_argument(
        "--output",
        default=DEFAULT_OUTPUT,
        help=f"the Markdown report, relative to the workdir (default: {DEFAULT_OUTPUT})",
    )


def prepare(args: argparse.Namespace, workdir: Path) -> AgentJob:
    """The top level's facts, and a goal asking for one read-only task per folder."""
    facts = read_top_level(workdir)
    named = f" `{facts.name}`" if facts.name else ""
    return AgentJob(
        goal=GOAL.format(named=named, tools=", ".join(READ_ONLY_TOOLS)),
        context=render_context(facts),
        on_plan=folder_gate(facts.folders),
        output=Path(str(args.output)),
        facts={"repo": facts},
    )


def read_top_level(root: Path) -> RepoFacts:
    """Folders, files, pyproject scripts and entry points, and the test setup of `root`."""
    folders: list[Folder] = []
    files: list[str] = []
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") or entry.name in _JUNK or entry.name.endswith(".egg-info"):
            continue
        if not entry.is_dir():
            files.append(entry.name)
        elif entry.name == "src" and not (entry / "__init__.py").exists():
            folders += [_folder(root, sub) for sub in sorted(entry.iterdir()) if _is_source(sub)]
        else:
            folders.append(_folder(root, entry))
    project = _pyproject(root)
    meta = cast(Mapping[str, Any], project.get("project", {}))
    return RepoFacts(
        name=str(meta.get("name", "")) or root.name,
        folders=tuple(folders[:MAX_FOLDERS]),
        unmapped=tuple(f.path for f in folders[MAX_FOLDERS:]),
        files=tuple(files),
        scripts=tuple(_scripts(meta)),
        entry_points=tuple(_entry_points(meta)),
        main_modules=tuple(
            f.path.removeprefix("src/").replace("/", ".")
            for f in folders
            if (root / f.path / "__main__.py").is_file()
        ),
        test_command=_test_command(root, project),
        has_pyproject=(root / "pyproject.toml").is_file(),
    )


def _is_source(path: Path) -> bool:
    return path.is_dir() and not path.name.startswith(".") and path.name not in _JUNK


def _folder(root: Path, path: Path) -> Folder:
    relative = path.relative_to(root).as_posix()
    task_id = _NOT_ID.sub("_", relative.removeprefix("src/").lower()).strip("_") or "root"
    kind: Literal["package", "folder"] = "package" if (path / "__init__.py").is_file() else "folder"
    return Folder(path=relative, task_id=task_id, kind=kind)


def _pyproject(root: Path) -> Mapping[str, Any]:
    path = root / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):  # a broken file maps as absent
        return {}


def _table(value: object) -> Mapping[str, object]:
    return cast(Mapping[str, object], value) if isinstance(value, dict) else {}


def _scripts(meta: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    for key in ("scripts", "gui-scripts"):
        for name, target in sorted(_table(meta.get(key)).items()):
            yield name, str(target)


def _entry_points(meta: Mapping[str, Any]) -> Iterable[tuple[str, str, str]]:
    for group, points in sorted(_table(meta.get("entry-points")).items()):
        for name, target in sorted(_table(points).items()):
            yield group, name, str(target)


def _test_command(root: Path, project: Mapping[str, Any]) -> str | None:
    pytest_config = _table(_table(project.get("tool")).get("pytest"))
    if pytest_config or (root / "pytest.ini").is_file() or (root / "conftest.py").is_file():
        return "python -m pytest"
    if (root / "tests").is_dir() or (root / "test").is_dir():
        return "python -m pytest"
    return None


def render_context(facts: RepoFacts) -> str:
    """What the planner sees: the folders with their task ids, the top-level files, pyproject."""
    lines = ["Folders (one task each, id in brackets):"]
    lines += [f"- {f.path}/ ({f.kind}) [{f.task_id}]" for f in facts.folders] or ["- (none)"]
    if facts.unmapped:
        lines.append(f"Not mapped (too many folders): {', '.join(facts.unmapped)}")
    lines.append("Top-level files: " + (", ".join(facts.files) or "(none)"))
    lines += [f"Script: {name} = {target}" for name, target in facts.scripts]
    return "\n".join(lines)


def folder_gate(folders: tuple[Folder, ...]) -> OnPlan:
    """An `on_plan` gate: every folder gets a task, and every task only the read-only tools."""

    def gate(preview: PlanPreview) -> PlanDecision:
        plan = with_folder_tasks(preview.plan, folders)
        return Accept() if plan is preview.plan else EditPlan(plan)

    return gate


def with_folder_tasks(plan: Plan, folders: tuple[Folder, ...]) -> Plan:
    """`plan` itself when it already maps every folder read-only, else a plan that does."""
    tasks = tuple(
        t
        if set(t.tools) <= set(READ_ONLY_TOOLS)
        else replace(t, tools=tuple(n for n in t.tools if n in READ_ONLY_TOOLS))
        for t in plan.tasks
    )
    covered = {t.id for t in tasks}
    added = tuple(_folder_task(f) for f in folders if f.task_id not in covered)
    if not added and all(a is b for a, b in zip(tasks, plan.tasks, strict=True)):
        return plan
    return replace(plan, tasks=(*tasks, *added))


def _folder_task(folder: Folder) -> TaskSpec:
    return TaskSpec(
        id=TaskId(folder.task_id),
        instruction=(
            f"Read the folder `{folder.path}/` (list_dir, then read_file or search_text on what "
            "matters) and say what it is for. Report outputs `modules` (its main files and what "
            "each defines), `entry_points` (commands, __main__ modules or CLIs, or none) and "
            "`tests` (how it is tested, or none). State only what the files show."
        ),
        tools=READ_ONLY_TOOLS,
        produces="what the folder is for, its modules, entry points and tests",
    )


def report(job: AgentJob, result: RunResult, checks: tuple[CheckRun, ...]) -> str:
    """The map: structure, entry points, how to run and test, then one section per folder."""
    facts = cast(RepoFacts, job.facts["repo"])
    by_folder, others = _assign(facts.folders, result)
    lines = [f"# Repository map: {facts.name}", ""]
    lines += _structure(facts, by_folder)
    lines += _entry_point_lines(facts)
    lines += _how_to(facts)
    for folder in facts.folders:
        title = "Package" if folder.kind == "package" else "Folder"
        lines += ["", f"## {title} `{folder.path}`", ""]
        lines += _findings(by_folder.get(folder.task_id, []))
    if others:
        lines += ["", "## Other findings", ""]
        for task_id, found in others:
            lines += [f"### {task_id}", "", *_findings([found])]
    if result.status != "completed":
        lines += ["", f"_The run ended {result.status}: some parts may be missing._"]
    return "\n".join(lines)


def _assign(
    folders: tuple[Folder, ...], result: RunResult
) -> tuple[dict[str, list[TaskResult]], list[tuple[TaskId, TaskResult]]]:
    """Each task's result under its folder (by id, or id prefix for a split folder), or aside."""
    by_folder: dict[str, list[TaskResult]] = {}
    others: list[tuple[TaskId, TaskResult]] = []
    for task_id, found in result.results.items():
        owner = next(
            (f for f in folders if task_id == f.task_id or task_id.startswith(f"{f.task_id}_")),
            None,
        )
        if owner is None:
            others.append((task_id, found))
        else:
            by_folder.setdefault(owner.task_id, []).append(found)
    return by_folder, others


def _structure(facts: RepoFacts, by_folder: Mapping[str, list[TaskResult]]) -> list[str]:
    lines = ["## Structure", ""]
    for folder in facts.folders:
        summaries = [_summary(r) for r in by_folder.get(folder.task_id, [])]
        first = next((s.splitlines()[0] for s in summaries if s), "")
        lines.append(f"- `{folder.path}/` ({folder.kind})" + (f": {first}" if first else ""))
    lines += [f"- `{path}/` (not mapped: too many folders)" for path in facts.unmapped]
    lines += [f"- `{name}`" for name in facts.files]
    return lines


def _entry_point_lines(facts: RepoFacts) -> list[str]:
    lines = ["", "## Entry points", ""]
    lines += [f"- `{name}` runs `{target}` (pyproject scripts)" for name, target in facts.scripts]
    lines += [f"- `python -m {module}` (`__main__.py`)" for module in facts.main_modules]
    lines += [
        f"- `{name}` = `{target}` (entry point group `{group}`)"
        for group, name, target in facts.entry_points
    ]
    if len(lines) == 3:
        lines.append("No scripts, entry points or `__main__` modules at the top level.")
    return lines


def _how_to(facts: RepoFacts) -> list[str]:
    lines = ["", "## How to run and test it", ""]
    if facts.has_pyproject:
        lines.append("- Install: `pip install -e .` (pyproject.toml)")
    lines += [f"- Run: `{name}`" for name, _ in facts.scripts]
    lines += [f"- Run: `python -m {module}`" for module in facts.main_modules]
    if facts.test_command:
        lines.append(f"- Test: `{facts.test_command}`")
    if len(lines) == 3:
        lines.append("The top level shows no install, run or test setup.")
    return lines


def _summary(found: TaskResult) -> str:
    match found:
        case Succeeded(summary=summary) | Unreviewed(summary=summary):
            return summary.strip()
        case Failed() | Skipped():
            return ""


def _findings(results: list[TaskResult]) -> list[str]:
    if not results:
        return ["_No task reported on this folder._"]
    lines: list[str] = []
    for found in results:
        match found:
            case (
                Succeeded(summary=summary, outputs=outputs)
                | Unreviewed(summary=summary, outputs=outputs)
            ):
                lines += [summary.strip(), ""]
                lines += [line for k, v in outputs.items() for line in _output_lines(k, v)]
            case Failed(error=error):
                lines.append(f"_Not mapped: the task failed: {error.message.strip()[:300]}_")
            case Skipped(reason=reason):
                lines.append(f"_Not mapped: the task was skipped: {reason}_")
    return lines


def _output_lines(name: str, value: str) -> list[str]:
    """One bullet per output; a value of several lines becomes a nested list, line by line."""
    rows = [row.strip().removeprefix("- ") for row in value.strip().splitlines() if row.strip()]
    if len(rows) <= 1:
        return [f"- **{name}**: {rows[0] if rows else '(empty)'}"]
    return [f"- **{name}**:", *(f"  - {row}" for row in rows)]


AGENT = Agent(
    name="repo-explainer",
    summary="Map a repository (structure, entry points, how to run and test it) into Markdown.",
    prepare=prepare,
    arguments=arguments,
    report=report,
    tools=file_tools(),
    builtin_tools=False,
    review="none",
)
"""Registered as the `repo-explainer` entry point of `orchestrator.agents`. Read-only: only the
read-only file tools, and no review (a task that changes nothing has nothing to undo, and the
report quotes the tasks' findings rather than trusting a summary)."""


if __name__ == "__main__":
    sys.exit(agent_main(AGENT))
