"""`shell_reaper` run for real: exit statuses, leftovers stopped, and everything killed when the
orchestrator (here: the test, holding the lifeline's write end) goes away.

The reaper runs as `python shell_reaper.py FD -- ARGV` without the runner's `-I -S`, so coverage's
subprocess hook (a `.pth` file, which `-S` skips) measures it; the behaviour is the same.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Sequence
from pathlib import Path

import pytest

from orchestrator.tools import shell_reaper
from orchestrator.tools.shell_reaper import descendants, reaper_argv

_REAPER = shell_reaper.__file__
_SH = shutil.which("sh") or "/bin/sh"
"""The reaper spawns ARGV as given, without a PATH search."""
_PR_GET_CHILD_SUBREAPER = 37
_POLL_S = 0.01
_WAIT_S = 5.0
# Runs the reaper with a longer grace, to show that the orchestrator's death cuts the grace short.
_LONG_GRACE = """
import importlib.util, sys

spec = importlib.util.spec_from_file_location("shell_reaper", sys.argv[1])
assert spec is not None and spec.loader is not None
reaper = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reaper)
reaper.GRACE_S = float(sys.argv[2])
sys.exit(reaper.main(sys.argv[3:]))
"""


class _Reaper:
    """A reaper process, the lifeline's write end (the orchestrator's side) and its output."""

    def __init__(self, process: subprocess.Popen[str], lifeline: int) -> None:
        self.process = process
        self.lifeline: int | None = lifeline

    def cut(self) -> None:
        """Close the lifeline's write end: to the reaper, the orchestrator has died."""
        if self.lifeline is not None:
            os.close(self.lifeline)
            self.lifeline = None

    def line(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline()

    def finish(self, *, stdin: str = "") -> tuple[int, str, str]:
        stdout, stderr = self.process.communicate(stdin, timeout=_WAIT_S)
        return self.process.returncode, stdout, stderr


@contextlib.contextmanager
def _reaper(argv: Sequence[str], *, prefix: Sequence[str] = ()) -> Generator[_Reaper]:
    """Start the reaper on `argv` (after `prefix`, the Python command line up to its FD)."""
    read, write = os.pipe()
    command = [*(prefix or (sys.executable, _REAPER)), str(read), "--", *argv]
    try:
        process = subprocess.Popen(
            command,
            pass_fds=(read,),
            start_new_session=True,  # as the runner starts it: its group is the command's
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    except BaseException:
        os.close(write)
        raise
    finally:
        os.close(read)
    reaper = _Reaper(process, write)
    try:
        yield reaper
    finally:
        reaper.cut()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=_WAIT_S)


def _is_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[1])


def _wait_until(predicate: Callable[[], bool]) -> bool:
    """Poll `predicate()` (another process's state has no event to wait on) until true or timeout."""
    deadline = time.monotonic() + _WAIT_S
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL_S)
    return True


@contextlib.contextmanager
def _killing(pids: list[int]) -> Generator[list[int]]:
    """Yield a list to fill with pids; SIGKILL them on the way out, so a failure leaks nothing."""
    try:
        yield pids
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_reaper_argv_runs_the_command_under_an_isolated_python() -> None:
    assert reaper_argv(["echo", "hi"], 7, python="/usr/bin/python3") == [
        "/usr/bin/python3",
        "-I",
        "-S",
        _REAPER,
        "7",
        "--",
        "echo",
        "hi",
    ]


def test_reaper_argv_without_a_python_runs_the_command_bare() -> None:
    assert reaper_argv(["echo", "hi"], 7, python="") == ["echo", "hi"]


@pytest.mark.parametrize(
    ("script", "stdout", "stderr", "exit_code"),
    [
        ("echo out; echo err >&2; exit 3", "out\n", "err\n", 3),
        ("kill -TERM $$", "", "", 128 + signal.SIGTERM),
        ("yes | head -n 1", "y\n", "", 0),
    ],
    ids=["own_status", "killed_by_signal", "sigpipe_default"],
)
def test_reaper_exits_as_the_command_does(
    script: str, stdout: str, stderr: str, exit_code: int
) -> None:
    """Its status is the command's (128+N for signal N); its output and SIGPIPE are untouched."""
    with _reaper([_SH, "-c", script]) as reaper:
        assert reaper.finish() == (exit_code, stdout, stderr)


def test_reaper_reports_a_command_it_cannot_run() -> None:
    with _reaper(["/nonexistent/program", "arg"]) as reaper:
        code, stdout, stderr = reaper.finish()

    assert (code, stdout) == (127, "")
    assert stderr.startswith("cannot run /nonexistent/program: [Errno 2] No such file")


@pytest.mark.parametrize(
    "args", [["3"], ["fd", "--", "true"], ["3", "-", "true"]], ids=["short", "fd", "separator"]
)
def test_reaper_rejects_a_malformed_command_line(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, _REAPER, *args], capture_output=True, text=True, check=False, timeout=5
    )

    assert (done.returncode, done.stdout, done.stderr) == (
        2,
        "",
        "usage: shell_reaper.py FD -- ARGV...\n",
    )


def test_reaper_stops_what_the_command_left_running() -> None:
    """A background job that still runs when the command exits is stopped (SIGTERM suffices)."""
    with _killing([]) as pids, _reaper([_SH, "-c", "sleep 30 >/dev/null & echo $!"]) as reaper:
        pids.append(int(reaper.line()))
        code, _, _ = reaper.finish()

        assert code == 0
        assert not _is_alive(pids[0])


def test_reaper_keeps_a_double_forked_daemon_in_its_tree() -> None:
    """As a child subreaper it inherits an orphaned grandchild instead of init, and stops it."""
    script = "(sleep 30 >/dev/null & echo $!); read line"
    with _killing([]) as pids, _reaper([_SH, "-c", script]) as reaper:
        pids.append(int(reaper.line()))
        # The subshell that forked it has exited: its parent is now the reaper.
        assert _wait_until(lambda: _parent(pids[0]) == reaper.process.pid)

        code, _, _ = reaper.finish(stdin="go\n")

        assert code == 0
        assert not _is_alive(pids[0])


def test_reaper_kills_a_leftover_that_ignores_sigterm_after_the_grace() -> None:
    # An ignored signal stays ignored in the background job: only SIGKILL ends it.
    script = "trap '' TERM; sleep 30 >/dev/null 2>&1 & echo $!; exit 4"
    with _killing([]) as pids, _reaper([_SH, "-c", script]) as reaper:
        pids.append(int(reaper.line()))
        code, _, _ = reaper.finish()

        assert code == 4
        assert not _is_alive(pids[0])


def test_reaper_kills_every_descendant_when_the_orchestrator_dies() -> None:
    """EOF on the lifeline while the command runs: all of it is SIGKILLed, status 128+SIGKILL."""
    script = "sleep 30 >/dev/null & echo $$ $!; wait"
    with _killing([]) as pids, _reaper([_SH, "-c", script]) as reaper:
        pids.extend(int(pid) for pid in reaper.line().split())
        assert all(_is_alive(pid) for pid in pids)

        reaper.cut()
        code, _, _ = reaper.finish()

        assert code == 128 + signal.SIGKILL
        assert [pid for pid in pids if _is_alive(pid)] == []


def test_reaper_cuts_the_grace_short_when_the_orchestrator_dies() -> None:
    """A leftover ignoring SIGTERM is killed as soon as the lifeline breaks, not after the grace;
    the status is still the command's."""
    script = "trap '' TERM; sleep 30 >/dev/null 2>&1 & echo $$ $!"
    prefix = (sys.executable, "-c", _LONG_GRACE, _REAPER, "60")
    with _killing([]) as pids, _reaper([_SH, "-c", script], prefix=prefix) as reaper:
        command, leftover = (int(pid) for pid in reaper.line().split())
        pids.append(leftover)
        # The reaper has reaped the command (so it is in its 60 s grace) once the pid is gone.
        assert _wait_until(lambda: not Path(f"/proc/{command}").exists())
        assert _is_alive(leftover)

        reaper.cut()
        started = time.monotonic()
        code, _, _ = reaper.finish()

        assert time.monotonic() - started < _WAIT_S
        assert code == 0
        assert not _is_alive(leftover)


def test_descendants_lists_live_processes_below_the_root_but_not_zombies() -> None:
    with contextlib.ExitStack() as stack:
        tree = stack.enter_context(
            subprocess.Popen([_SH, "-c", "sleep 30 & echo $!; wait"], stdout=subprocess.PIPE)
        )
        stack.callback(tree.kill)
        assert tree.stdout is not None
        grandchild = int(tree.stdout.readline())
        stack.enter_context(_killing([grandchild]))
        zombie = stack.enter_context(subprocess.Popen(["true"]))
        assert _wait_until(lambda: not _is_alive(zombie.pid))

        assert descendants(tree.pid) == [grandchild]
        found = descendants(os.getpid())
        assert {tree.pid, grandchild} <= set(found)
        assert zombie.pid not in found


def test_send_skips_processes_already_gone() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    with subprocess.Popen(["sleep", "30"]) as live:
        shell_reaper._send([gone.pid, live.pid], signal.SIGKILL)  # pyright: ignore[reportPrivateUsage]

        assert live.wait(timeout=_WAIT_S) == -signal.SIGKILL


def test_become_subreaper_without_ctypes_leaves_the_process_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Python without ctypes still runs commands: the subreaper is skipped, not an error."""
    monkeypatch.setitem(sys.modules, "ctypes", None)  # `import ctypes` now raises ImportError

    shell_reaper._become_subreaper()  # pyright: ignore[reportPrivateUsage]

    monkeypatch.undo()
    flag = ctypes.c_int(-1)
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0) == 0
    assert flag.value == 0
