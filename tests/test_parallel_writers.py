"""Parallel writers through the engine: each writing task edits its own copy, accepted copies are
merged in acceptance order, and a real conflict becomes a resolve task its dependents wait for."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from orchestrator.events import Event, MergeStarted, ToolCalled, WorkspaceMerged
from orchestrator.llm import ModelReply, ModelRequest, ToolCall, ToolDefinition, ToolKind
from orchestrator.models import Limits, Succeeded, TaskId
from orchestrator.testing import ScriptedModel, tool_call
from orchestrator.toolkit import ToolContext, ToolOutput
from orchestrator.tools.apply_patch import ApplyPatchTool
from orchestrator.tools.files import file_tools

from .helpers import accept_all, answer, engine, leaf, plan, task

FILES: tuple[str, ...] = ("f1.txt", "f2.txt", "f3.txt")
LINES = 60
WRITERS = 8
_RESOLVE = re.compile(r"^(t\d+)-resolve\d+$")


def _line_of(writer: int) -> int:
    """Writers 1-4 edit their own lines; writers 5-8 edit the same lines as 1-4 (overlap)."""
    return 6 * ((writer - 1) % 4) + 5


def _seed(work: Path) -> None:
    for name in FILES:
        (work / name).write_text("".join(f"line {i}\n" for i in range(1, LINES + 1)))


def _patch(edits: Mapping[str, tuple[str, str]]) -> str:
    """A V4A patch replacing one whole line per file (old → new), with a line of context."""
    out = ["*** Begin Patch"]
    for name, (old, new) in edits.items():
        out += [f"*** Update File: {name}", "@@", f"-{old}", f"+{new}"]
    return "\n".join([*out, "*** End Patch", ""])


def _tree(work: Path) -> dict[str, str]:
    return {name: (work / name).read_text() for name in FILES}


def _digest(work: Path) -> str:
    return hashlib.sha256(json.dumps(_tree(work), sort_keys=True).encode()).hexdigest()


class _Watch:
    """Checks, at every tool call, that the main tree changed only through merges."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.expected = _digest(work)
        self.violations: list[str] = []
        self.merges: list[WorkspaceMerged] = []
        self.merging = 0
        """Merges between their `merge_started` and `workspace_merged`: they may write."""

    def emit(self, event: Event) -> None:
        if isinstance(event, MergeStarted):
            self.merging += 1
        elif isinstance(event, WorkspaceMerged):
            self.merging -= 1
            self.merges.append(event)
            self.expected = _digest(self.work)
        elif (
            isinstance(event, ToolCalled)
            and not self.merging
            and _digest(self.work) != self.expected
        ):
            self.violations.append(f"main tree changed outside a merge before {event.call_id}")


class _WhereWritten:
    """apply_patch, recording the workspace each call wrote to (each task's must be its own)."""

    def __init__(self) -> None:
        self._tool = ApplyPatchTool()
        self.places: dict[str, set[Path]] = {}

    @property
    def name(self) -> str:
        return self._tool.name

    def definition(self, *, native: frozenset[ToolKind]) -> ToolDefinition:
        return self._tool.definition(native=native)

    async def __call__(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        self.places.setdefault(ctx.task_id, set()).add(ctx.workdir)
        return await self._tool(call, ctx)


def _worker(work: Path):
    def respond(request: ModelRequest) -> ModelReply:
        tid = request.task_id or ""
        done = [m for m in request.messages if m.role == "tool"]
        if done or tid == "after":
            return ModelReply(text=leaf(f"{tid} edited").model_dump_json())
        resolve = _RESOLVE.match(tid)
        if resolve is None:
            writer = int(tid[1:])
            line = _line_of(writer)
            edits = dict.fromkeys(FILES, (f"line {line}", f"line {line} edited by {tid}"))
        else:  # merge both sides: the main tree's line and this task's
            theirs = resolve.group(1)
            line = _line_of(int(theirs[1:]))
            edits = {}
            for name in FILES:
                ours = (work / name).read_text().splitlines()[line - 1]
                names = sorted({ours.rsplit(" ", 1)[-1], theirs})
                edits[name] = (ours, f"line {line} edited by {'+'.join(names)}")
        return tool_call("apply_patch", {"patch": _patch(edits)}, call_id=f"p-{tid}")

    return respond


def _expected() -> dict[str, str]:
    lines = [f"line {i}" for i in range(1, LINES + 1)]
    for writer in range(1, 5):
        line = _line_of(writer)
        lines[line - 1] = f"line {line} edited by t{writer}+t{writer + 4}"
    text = "".join(f"{line}\n" for line in lines)
    return dict.fromkeys(FILES, text)


@pytest.mark.timeout(60)
async def test_parallel_writers_merge_disjoint_edits_and_resolve_every_overlap(
    tmp_path: Path,
) -> None:
    work = tmp_path / "ws"
    work.mkdir()
    _seed(work)
    watch = _Watch(work)
    model = ScriptedModel()
    writers = [task(f"t{i}", tools=["apply_patch"]) for i in range(1, WRITERS + 1)]
    model.script("planner", plan(*writers, task("after", *(f"t{i}" for i in range(1, 9)))))
    model.respond("worker", _worker(work))
    model.respond("reviewer", accept_all).respond("synthesizer", answer)
    patcher = _WhereWritten()
    eng = engine(
        model,
        tmp_path,
        tools=[patcher, *file_tools()],
        sinks=[watch],
        limits=Limits(max_parallel=WRITERS),
    )
    result = await eng.run("edit the three files", workdir=work)
    assert result.status == "completed", result
    assert watch.violations == []
    copies = Path(result.run_dir or "") / "ws" / "tasks"
    for tid, places in patcher.places.items():  # each wrote only in its own copy
        assert places == {copies / tid}, (tid, places)
    conflicted = {m.task_id for m in watch.merges if m.conflicts}
    assert len(conflicted) == 4  # one of each overlapping pair, whichever merged second
    resolves = {TaskId(f"{t}-resolve1") for t in conflicted}
    assert resolves <= set(result.results)
    assert all(isinstance(r, Succeeded) for r in result.results.values())
    assert _tree(work) == _expected()
    # the dependent waited for the resolve tasks: it started after every merge
    assert {m.task_id for m in watch.merges} >= {TaskId(f"t{i}") for i in range(1, 9)} | resolves
    leftovers = list((Path(result.run_dir or "") / "ws" / "tasks").glob("*"))
    assert leftovers == []


def _git(work: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(work), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.timeout(60)
async def test_parallel_writers_leave_a_git_repository_history_untouched(tmp_path: Path) -> None:
    """Merges land in the working tree; the repo's branch, history and worktrees stay as they
    were (the run's own commits live in its private store under the run directory)."""
    work = tmp_path / "repo"
    work.mkdir()
    _seed(work)
    _git(work, "init", "-q", "-b", "main")
    _git(work, "-c", "user.name=u", "-c", "user.email=u@x", "add", "-A")
    _git(work, "-c", "user.name=u", "-c", "user.email=u@x", "commit", "-q", "-m", "seed")
    before = (_git(work, "log", "--format=%H"), _git(work, "branch", "--list"))
    model = ScriptedModel()
    writers = [task(f"t{i}", tools=["apply_patch"]) for i in range(1, 5)]  # disjoint lines
    model.script("planner", plan(*writers))
    model.respond("worker", _worker(work))
    model.respond("reviewer", accept_all).respond("synthesizer", answer)
    eng = engine(model, tmp_path, tools=[ApplyPatchTool(), *file_tools()])
    result = await eng.run("edit", workdir=work)
    assert result.status == "completed"
    assert (_git(work, "log", "--format=%H"), _git(work, "branch", "--list")) == before
    assert _git(work, "worktree", "list").count("\n") == 1
    status = sorted(line.split()[-1] for line in _git(work, "status", "--porcelain").splitlines())
    assert status == list(FILES)  # the merged edits, left for the user to review and commit
    text = (work / "f1.txt").read_text()
    assert all(f"edited by t{i}" in text for i in range(1, 5))


def _cut_after(run_dir: Path, kind: str, task_id: str) -> None:
    """Leave the journal as a kill right after that event would have (a prefix of it)."""
    db = sqlite3.connect(run_dir / "journal.sqlite3")
    with db:
        seq = next(
            seq
            for seq, k, body in db.execute("SELECT seq, kind, body FROM events ORDER BY seq")
            if k == kind and json.loads(body)["task_id"] == task_id
        )
        db.execute("DELETE FROM events WHERE seq > ?", (seq,))
    db.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("written", [False, True], ids=["before-writing", "after-writing"])
async def test_parallel_writers_a_merge_cut_by_a_crash_lands_exactly_once(
    tmp_path: Path, written: bool
) -> None:
    """Killed between a task's acceptance and the end of its merge, a resumed run merges it
    again: the change is in the tree once, and the task is not run again."""
    work = tmp_path / "ws"
    work.mkdir()
    _seed(work)
    seeded = _tree(work)

    def first_run() -> ScriptedModel:
        model = ScriptedModel()
        model.script("planner", plan(task("t1", tools=["apply_patch"]), task("after", "t1")))
        model.respond("worker", _worker(work))
        return model.respond("reviewer", accept_all).respond("synthesizer", answer)

    tools = [ApplyPatchTool(), *file_tools()]
    done = await engine(first_run(), tmp_path, tools=tools).run("edit", workdir=work)
    run_dir = Path(done.run_dir or "")
    _cut_after(run_dir, "merge_started", "t1")
    if not written:
        for name, text in seeded.items():
            (work / name).write_text(text)
    resumed_model = ScriptedModel().respond("worker", _worker(work))
    resumed_model.respond("reviewer", accept_all).respond("synthesizer", answer)
    result = await engine(resumed_model, tmp_path, tools=tools).resume(done.run_id)
    assert result.status == "completed"
    assert resumed_model.calls_for("worker", "t1") == []
    for name in FILES:
        assert (work / name).read_text().count("edited by t1") == 1
