"""`orchestrator runs list | show | gc` and `report` on run roots a user may find: an empty index, a
result this version cannot read, a run from before runs were journaled, a root with no index, and
no web browser for `report --open`. The real CLI in a subprocess; the runs are made in this process
with a ScriptedModel (the run root is a directory like any other)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import anyio
import pytest

from orchestrator.journal import JOURNAL_FILE
from orchestrator.models import RunId
from orchestrator.store import RunStore
from orchestrator.testing import ScriptedModel

from .cli_harness import assert_one_error, orchestrator
from .helpers import accept_all, answer, engine, leaf, plan, task

_INDEX = "runs.sqlite3"


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def _root(work: Path) -> Path:
    return work / ".orchestrator" / "runs"


def _finished_run(work: Path) -> str:
    """A completed two-task run under `work`'s default run root; its id."""
    model = ScriptedModel()
    model.script("planner", plan(task("a"), task("b", "a")))
    model.script("worker", leaf("a done"), task="a")
    model.script("worker", leaf("b done"), task="b")
    model.respond("reviewer", accept_all).respond("synthesizer", answer)
    # helpers.engine puts its run root at `<dir>/runs`.
    result = anyio.run(engine(model, work / ".orchestrator").run, "count the words")
    model.assert_complete()
    assert result.status == "completed"
    return result.run_id


def test_cli_runs_list_with_an_empty_index_says_there_are_no_runs(work: Path) -> None:
    RunStore(_root(work)).close()
    cli = orchestrator("runs", "list", cwd=work)
    assert (cli.code, cli.stderr) == (0, "")
    assert cli.stdout == f"no runs under {Path('.orchestrator/runs')}\n"


def test_cli_runs_list_shows_an_unreadable_result_and_an_unjournaled_run_without_cost(
    work: Path,
) -> None:
    """A cost that cannot be read is `-`, never a made-up $0; the other rows still list."""
    store = RunStore(_root(work))
    store.started(RunId("old"), "from a newer version", 1000.0, pid=2**22 + 9)
    store.started(RunId("live"), "still starting", 2000.0)  # this (living) test process
    store.close()
    (_root(work) / "old").mkdir()
    (_root(work) / "old" / "result.json").write_text('{"run_id": "old", "status": 7}')
    cli = orchestrator("runs", "list", cwd=work)
    assert (cli.code, cli.stderr) == (0, "")
    rows = [line.split() for line in cli.stdout.splitlines()]
    assert [r[:3] for r in rows] == [["live", "running", "-"], ["old", "interrupted", "-"]]


def test_cli_runs_show_a_run_from_before_journals_prints_its_result(work: Path) -> None:
    run_id = _finished_run(work)
    (_root(work) / run_id / JOURNAL_FILE).unlink()
    cli = orchestrator("runs", "show", run_id, cwd=work)
    assert (cli.code, cli.stderr) == (0, "")
    assert f"{run_id}: completed" in cli.stdout
    assert "a done" in cli.stdout and "b done" in cli.stdout


def test_cli_runs_show_without_a_journal_or_a_result_is_one_line(work: Path) -> None:
    run_id = _finished_run(work)
    (_root(work) / run_id / JOURNAL_FILE).unlink()
    (_root(work) / run_id / "result.json").unlink()
    cli = orchestrator("runs", "show", run_id, cwd=work)
    assert_one_error(cli, 2, run_id)


def test_cli_runs_show_reads_the_journal_where_the_index_is_gone(work: Path) -> None:
    run_id = _finished_run(work)
    for name in os.listdir(_root(work)):
        if name.startswith(_INDEX):
            (_root(work) / name).unlink()
    cli = orchestrator("runs", "show", run_id, cwd=work)
    assert (cli.code, cli.stderr) == (0, "")
    assert cli.stdout.startswith(f"run {run_id}: completed")
    assert not (_root(work) / _INDEX).exists()  # reading created no index


def test_cli_runs_gc_counts_runs_that_left_no_copies(work: Path) -> None:
    run_id = _finished_run(work)
    shutil.rmtree(_root(work) / run_id / "ws", ignore_errors=True)
    cli = orchestrator("runs", "gc", cwd=work)
    assert (cli.code, cli.stderr) == (0, "")
    assert cli.stdout == "removed 0 workspace copies of 1 runs\n"


def test_cli_report_of_a_run_without_a_journal_is_one_line(work: Path) -> None:
    run_id = _finished_run(work)
    (_root(work) / run_id / JOURNAL_FILE).unlink()
    cli = orchestrator("report", run_id, cwd=work)
    assert_one_error(cli, 2, f"run {run_id} has no journal", "orchestrator runs show")
    assert not (_root(work) / run_id / "report.html").exists()


@pytest.mark.timeout(30)
def test_cli_report_open_without_a_browser_says_where_the_file_is(
    tmp_path: Path, work: Path
) -> None:
    run_id = _finished_run(work)
    empty = tmp_path / "no-browsers"
    empty.mkdir()
    # No display and nothing on PATH: the only browser is one that fails.
    env = {"BROWSER": shutil.which("false") or "/bin/false", "PATH": str(empty)}
    cli = orchestrator(
        "report", run_id, "--open", cwd=work, env=env | {"DISPLAY": "", "WAYLAND_DISPLAY": ""}
    )
    assert cli.code == 0, cli.stderr
    path = cli.stdout.strip()
    assert (work / path).resolve() == (_root(work) / run_id / "report.html").resolve()
    assert cli.stderr == f"no web browser found: open {path} yourself\n"
    assert run_id in (work / path).read_text()
