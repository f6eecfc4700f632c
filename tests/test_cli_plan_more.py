"""`--plan-only` and `--approve`'s helpers in this process, with a ScriptedModel planner: the
preview as text and as one JSON line, Ctrl-C while planning, and reading the answer from stdin.

The CLI-in-a-subprocess tests (`test_cli_plan.py`) prove the same promises from the outside; these
also pin the JSON shape and the Ctrl-C path, which a loopback server cannot trigger reliably.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from orchestrator.app import Orchestrator
from orchestrator.cli_errors import EXIT_INTERRUPTED
from orchestrator.cli_plan import NOTHING_RAN, plan_only, read_line
from orchestrator.settings import Settings
from orchestrator.testing import ScriptedModel

from .helpers import plan, task


def _orchestrator(model: ScriptedModel, workdir: Path) -> Orchestrator:
    return Orchestrator(
        client=model,
        workdir=workdir,
        settings=Settings(plugins=False, shell_sandbox="off", run_root=workdir / "runs"),
        builtin_tools=False,
    )


def test_plan_only_prints_the_preview_then_that_nothing_ran(
    scripted: ScriptedModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scripted.script("planner", plan(task("a"), task("b", "a")))
    code = plan_only(_orchestrator(scripted, tmp_path), "g", as_json=False)
    out = capsys.readouterr()
    assert code == 0
    lines = out.out.splitlines()
    assert lines[-1] == NOTHING_RAN
    assert any(line.strip().startswith("a ") for line in lines), out.out
    assert any(line.strip().startswith("b ") for line in lines), out.out
    assert out.err == ""
    assert [c.request.role for c in scripted.calls] == ["planner"]
    assert not (tmp_path / "runs").exists()


def test_plan_only_json_prints_the_preview_as_one_json_line(
    scripted: ScriptedModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scripted.script("planner", plan(task("a"), task("b", "a")))
    code = plan_only(_orchestrator(scripted, tmp_path), "g", as_json=True)
    out = capsys.readouterr().out
    assert code == 0
    (line,) = out.splitlines()  # stdout stays JSON lines: no "no task was executed"
    preview = json.loads(line)
    assert [t["id"] for t in preview["plan"]["tasks"]] == ["a", "b"]
    assert preview["plan"]["tasks"][1]["deps"] == ["a"]
    assert {"low_usd", "high_usd", "expected_usd"} <= preview["estimate"].keys()


def test_plan_only_interrupted_while_planning_exits_130_and_says_nothing_ran(
    scripted: ScriptedModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scripted.script("planner", KeyboardInterrupt())
    code = plan_only(_orchestrator(scripted, tmp_path), "g", as_json=False)
    out = capsys.readouterr()
    assert code == EXIT_INTERRUPTED == 130
    assert out.err == f"cancelled: {NOTHING_RAN}\n"
    assert out.out == ""
    assert not (tmp_path / "runs").exists()


async def test_read_line_without_stdin_is_the_end_of_input(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stdin", None)
    assert await read_line() == ""


async def test_read_line_reads_one_line_of_a_regular_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    answers = tmp_path / "answers"
    answers.write_text("yes\nno\n")
    with answers.open() as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)
        assert await read_line() == "yes\n"
        assert await read_line() == "no\n"
        assert await read_line() == ""


async def test_read_line_reads_a_stream_without_a_descriptor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A replaced stdin with no file descriptor (an embedding app's) is read directly."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    assert await read_line() == "y\n"
