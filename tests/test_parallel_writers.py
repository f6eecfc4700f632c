"""Parallel writers through the engine: each writing task edits its own copy, accepted copies are
merged in acceptance order, and a real conflict becomes a resolve task its dependents wait for."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path

import pytest

from orchestrator.events import Event, MergeStarted, ToolCalled, WorkspaceMerged
from orchestrator.llm import ModelReply, ModelRequest
from orchestrator.models import Limits, Succeeded, TaskId
from orchestrator.testing import ScriptedModel, tool_call
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
    eng = engine(
        model,
        tmp_path,
        tools=[ApplyPatchTool(), *file_tools()],
        sinks=[watch],
        limits=Limits(max_parallel=WRITERS),
    )
    result = await eng.run("edit the three files", workdir=work)
    assert result.status == "completed", result
    assert watch.violations == []
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
