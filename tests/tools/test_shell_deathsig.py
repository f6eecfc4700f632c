"""`kill -9` of the orchestrator takes the shell tool's commands, and what they started, with it.

A stand-in orchestrator (a Python subprocess) runs the real `ShellTool` on `sleep & sleep`; the
test SIGKILLs it while the sleeps run and then watches /proc until every sleep is gone.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Literal

import pytest

from orchestrator.tools.sandbox import Sandbox
from orchestrator.tools.shell_runner import arun_shell

Mode = Literal["bwrap", "off"]
Moment = Literal["running", "starting", "detached"]
_PROC = Path("/proc")
_START_TIMEOUT_S = 20.0
"""Generous: under load, importing the orchestrator alone can take seconds."""
_DEATH_TIMEOUT_S = 5.0
_POLL_S = 0.02

# The stand-in orchestrator: the shell tool as the engine calls it, on the event-loop thread.
_CHILD = """
import json, sys
from pathlib import Path

import anyio

from orchestrator.llm import ToolCall
from orchestrator.models import RunId, TaskId
from orchestrator.toolkit import ToolContext
from orchestrator.tools.sandbox import Sandbox
from orchestrator.tools.shell_runner import arun_shell
from orchestrator.tools.shell import ShellTool

mode, workspace, command = sys.argv[1:]


async def main() -> None:
    sandbox = Sandbox.detect() if mode == "bwrap" else Sandbox.disabled("test: off")
    tool = ShellTool(sandbox=sandbox)
    arguments = {"command": command, "timeout_ms": 60_000, "max_output_length": None}
    call = ToolCall(call_id="c1", name="shell", arguments=json.dumps(arguments))
    root = Path(workspace)
    ctx = ToolContext(workdir=root, run_dir=root.parent / "run", run_id=RunId("r1"),
                      task_id=TaskId("t1"), call_id="c1")
    await tool(call, ctx)


anyio.run(main)
"""


def _carrying(marker: str, *, program: bytes | None = None, below: int | None = None) -> list[int]:
    """Live (not zombie) processes whose argv holds `marker`, optionally only those that run
    `program` or whose parent is `below`."""
    found: list[int] = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state, ppid = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[:2]
        except OSError:
            continue
        if state == "Z" or not any(marker.encode() in arg for arg in argv):
            continue
        if (program is None or argv[0] == program) and (below is None or int(ppid) == below):
            found.append(int(entry.name))
    return found


def _sleeps(marker: str) -> list[int]:
    return _carrying(marker, program=b"sleep")


def _describe(pids: list[int]) -> list[str]:
    """`pid ppid argv` of each process, for a failure message."""
    rows: list[str] = []
    for pid in pids:
        with contextlib.suppress(OSError):
            ppid = (_PROC / str(pid) / "stat").read_text().rsplit(")", 1)[-1].split()[1]
            argv = (_PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ")
            rows.append(f"{pid} {ppid} {argv.decode(errors='replace')[:120]}")
    return rows


def _wait_for(predicate: Callable[[], bool], timeout_s: float) -> bool:
    """Poll `predicate()` (another process's state has no event to wait on) until true or timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(_POLL_S)
    return bool(predicate())


@contextlib.contextmanager
def _reaping(marker: str) -> Generator[None]:
    """On the way out, SIGKILL whatever still carries `marker`, so a failure leaks no sleeps."""
    try:
        yield
    finally:
        for pid in _carrying(marker):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.timeout(45)
@pytest.mark.parametrize("moment", ["running", "starting", "detached"])
@pytest.mark.parametrize("mode", ["bwrap", "off"], ids=["sandbox", "sandbox_off"])
def test_shell_children_die_with_a_sigkilled_orchestrator(
    mode: Mode, moment: Moment, tmp_path: Path
) -> None:
    """`sleep & sleep` dies within seconds of `kill -9` on the process that ran the tool,
    sandboxed or not: killed while both sleeps run, as soon as the command's first process
    appears (mid-setup), or while one sleep runs detached (own session, double fork, no marker
    in its environment)."""
    if mode == "bwrap" and not (detected := Sandbox.detect()).is_available:
        pytest.skip(f"bubblewrap is unavailable here: {detected.status_message}")
    marker = f"300.{secrets.randbelow(10**9):09d}"
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    command = f"sleep {marker} & sleep {marker}"
    if moment == "detached":
        command = f"(env -i setsid sleep {marker} &); sleep {marker}"
    with _reaping(marker):
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, mode, str(workspace), command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            if moment != "starting":
                started = _wait_for(lambda: len(_sleeps(marker)) == 2, _START_TIMEOUT_S)
            else:
                started = _wait_for(
                    lambda: bool(_carrying(marker, below=child.pid)), _START_TIMEOUT_S
                )
            if not started:
                seen = _describe(_carrying(marker))
                child.kill()
                _, err = child.communicate(timeout=5)
                pytest.fail(
                    f"the sleeps never started: {seen} {err.decode(errors='replace')[-2000:]}"
                )
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=5)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=5)
            assert child.stdout is not None and child.stderr is not None
            child.stdout.close()
            child.stderr.close()
        gone = _wait_for(lambda: not _carrying(marker), _DEATH_TIMEOUT_S)
        assert gone, f"alive {_DEATH_TIMEOUT_S}s after kill -9: {_describe(_carrying(marker))}"


@pytest.mark.parametrize("sandboxed", [True, False], ids=["sandbox", "sandbox_off"])
@pytest.mark.parametrize(
    ("command", "stdout", "exit_code"),
    [("yes | head -n 1; exit 7", "y\n", 7), ("echo hi; kill -TERM $$", "hi\n", 143)],
    ids=["sigpipe_default", "killed_by_signal"],
)
async def test_reaper_passes_on_exit_status_and_default_signals(
    command: str, stdout: str, exit_code: int, sandboxed: bool, tmp_path: Path
) -> None:
    """Under the reaper a command exits as it would without it: its own status, 128+N when
    signal N ends it, and SIGPIPE at its default (`yes` dies quietly instead of complaining)."""
    sandbox = Sandbox.detect() if sandboxed else None
    if sandbox is not None and not sandbox.is_available:
        pytest.skip(f"bubblewrap is unavailable here: {sandbox.status_message}")

    result = await arun_shell(
        command, tmp_path, timeout_ms=10_000, max_output_length=None, sandbox=sandbox
    )

    assert (result.stdout, result.stderr, result.exit_code) == (stdout, "", exit_code)


async def test_reaper_stops_a_detached_daemon_when_the_command_ends_unisolated(
    tmp_path: Path,
) -> None:
    """`setsid env -i` leaves the process group and the run marker, but not the reaper's
    subtree: it is stopped with the command even without the sandbox's PID namespace."""
    marker = f"100.{secrets.randbelow(10**9):09d}"
    command = f"setsid env -i sleep {marker} >/dev/null 2>&1 &"
    with _reaping(marker):
        result = await arun_shell(
            command, tmp_path, timeout_ms=10_000, max_output_length=None, sandbox=None
        )

        assert result.exit_code == 0
        assert _carrying(marker) == []
