"""`orchestrator runs gc` from the shell: copies a crashed run left behind are removed."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from orchestrator.models import RunId
from orchestrator.store import RunStore
from orchestrator.workspaces import Workspaces


async def test_runs_gc_removes_the_copies_of_a_crashed_run(tmp_path: Path) -> None:
    work = tmp_path / "ws"
    work.mkdir()
    (work / "a.txt").write_text("a\n")
    root = work / ".orchestrator" / "runs"
    store = RunStore(root)
    store.started(RunId("dead"), "goal", 1.0, pid=2**22 + 7)  # above pid_max: gone
    run_dir = store.run_dir(RunId("dead"))
    store.close()
    spaces = Workspaces(work, run_dir / "ws", hidden=(root,))
    copy = await spaces.isolate("t1")  # the crash leaves it: close() never runs
    assert copy.is_dir()
    done = await anyio.run_process(
        [sys.executable, "-m", "orchestrator.cli", "runs", "gc", "--workdir", str(work)],
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert "removed 1 workspace copy of 1 runs" in done.stdout.decode()
    assert not copy.exists()
    assert (work / "a.txt").read_text() == "a\n"
