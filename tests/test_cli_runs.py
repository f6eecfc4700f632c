"""`orchestrator runs list | show | gc`, `tools list` and `report` from the shell: reading creates
nothing, errors are one line, a closed pipe is quiet, and `report` writes the run's HTML file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.models import RunId
from orchestrator.store import RunStore

from .cli_harness import assert_one_error, cli_env, orchestrator, server_flags, tree, write_script
from .engine_model import EngineModel
from .fault_server import FaultServer

TASKS = ("t0001", "t0002", "t0003")


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.mark.timeout(60)
def test_cli_read_only_commands_create_nothing(tmp_path: Path, work: Path) -> None:
    for args in (("runs", "list"), ("runs", "gc"), ("runs", "list", "--workdir", "nowhere")):
        cli = orchestrator(*args, cwd=work)
        assert (cli.code, cli.stderr) == (0, ""), args
        assert cli.stdout.startswith("no runs under "), cli.stdout
    listing = orchestrator("tools", "list", "--json", cwd=work)
    assert listing.code == 0, listing.stderr
    assert "apply_patch" in {tool["name"] for tool in json.loads(listing.stdout)}
    for args in (("runs", "show", "abc"), ("report", "abc"), ("runs", "show", "../work")):
        assert_one_error(orchestrator(*args, cwd=work), 2, "no run ", "orchestrator runs list")
    assert tree(work) == []


@pytest.mark.timeout(60)
def test_cli_broken_pipe_ends_quietly(work: Path) -> None:
    """`orchestrator runs list | head`: the reader goes away; no traceback, status 141."""
    store = RunStore(work / ".orchestrator" / "runs")
    for n in range(20):
        store.started(RunId(f"run{n:02d}"), f"goal number {n}", 1000.0 + n, pid=2**22 + 9)
    store.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "runs", "list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
        cwd=work,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the child writes: its first write finds the pipe closed
    with proc.stderr:
        stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=30) == 141, stderr
    assert stderr == ""


@pytest.mark.timeout(90)
def test_cli_report_writes_the_run_with_every_task(tmp_path: Path, work: Path) -> None:
    model = EngineModel(len(TASKS), tool="not_registered")
    with FaultServer(model, role_of=EngineModel.role_of) as srv:
        ran = orchestrator("run", "Count.", *server_flags(srv), "--json", cwd=work)
    assert ran.code == 0, ran.stderr[-3000:]
    run_id = json.loads(ran.stdout.splitlines()[-1])["run_id"]
    run_dir = work / ".orchestrator" / "runs" / run_id

    cli = orchestrator("report", run_id, cwd=work)
    assert (cli.code, cli.stderr) == (0, ""), cli.stderr
    assert (work / cli.stdout.strip()).resolve() == (run_dir / "report.html").resolve()
    html = (run_dir / "report.html").read_text()
    assert all(tid in html for tid in TASKS)

    opened = tmp_path / "opened"
    browser = write_script(tmp_path / "browser", ["#!/bin/sh", f'echo "$1" > {opened}'])
    browser.chmod(0o755)
    out = tmp_path / "mine.html"
    cli = orchestrator(
        *("report", run_id, "--workdir", str(work), "--out", str(out), "--open"),
        cwd=tmp_path,
        env={"BROWSER": f"{browser} %s"},
    )
    assert cli.code == 0, cli.stderr
    assert cli.stdout.strip() == str(out)
    assert all(tid in out.read_text() for tid in TASKS)
    assert opened.read_text().strip() == out.resolve().as_uri()


@pytest.mark.timeout(30)
def test_cli_report_out_in_a_missing_directory_is_one_line(work: Path) -> None:
    (work / ".orchestrator" / "runs" / "r1").mkdir(parents=True)
    (work / ".orchestrator" / "runs" / "r1" / "journal.sqlite3").touch()
    cli = orchestrator("report", "r1", "--out", "nowhere/r.html", cwd=work)
    assert_one_error(cli, 2, "no such directory for --out: nowhere")
