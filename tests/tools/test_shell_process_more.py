"""Ending a command's processes: groups that ignore SIGTERM, zombies, and the run-marker sweep."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Generator
from pathlib import Path

import pytest

from orchestrator.tools import shell_process
from orchestrator.tools.shell_env import RUN_MARKER
from orchestrator.tools.shell_process import group_alive, kill_marked, stop_group

_WAIT_S = 5.0


@pytest.fixture
def no_proc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A system without /proc (the module's view of it, at least)."""
    monkeypatch.setattr(shell_process, "_PROC", tmp_path / "no-proc")


@pytest.fixture
def zombie_group() -> Generator[int]:
    """The id of a process group whose only member has exited but is not reaped yet."""
    with subprocess.Popen(["true"], start_new_session=True) as process:
        deadline = time.monotonic() + _WAIT_S
        stat = Path(f"/proc/{process.pid}/stat")
        while stat.read_text().rsplit(")", 1)[-1].split()[0] != "Z":
            assert time.monotonic() < deadline, "`true` did not exit"
            time.sleep(0.01)
        yield process.pid


def _marked_sleep(token: str) -> subprocess.Popen[bytes]:
    env = {"PATH": os.environ["PATH"], RUN_MARKER: token}
    return subprocess.Popen(["sleep", "30"], env=env)


def test_group_alive_does_not_count_zombies(zombie_group: int) -> None:
    assert not group_alive(zombie_group)


def test_group_alive_without_proc_trusts_the_signal(zombie_group: int, no_proc: None) -> None:
    """Without /proc a zombie cannot be told apart, so a group that takes signal 0 is alive."""
    assert group_alive(zombie_group)


def test_group_alive_counts_a_group_it_may_not_signal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another user's group exists even though we may not signal it (EPERM is not ESRCH)."""

    def refuse(pgid: int, signum: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "killpg", refuse)

    assert group_alive(12345)


@pytest.fixture
def stubborn_group() -> Generator[subprocess.Popen[bytes]]:
    """A shell leading its own process group, and a child of it, both ignoring SIGTERM."""
    script = "trap '' TERM; sleep 30 & echo ready; wait"
    with subprocess.Popen(
        ["sh", "-c", script], start_new_session=True, stdout=subprocess.PIPE
    ) as process:
        try:
            assert process.stdout is not None
            assert process.stdout.readline() == b"ready\n"  # SIGTERM is ignored from here on
            yield process
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


async def test_stop_group_kills_a_group_that_ignores_sigterm(
    stubborn_group: subprocess.Popen[bytes],
) -> None:
    started = time.monotonic()
    await stop_group(stubborn_group.pid, grace_s=0.05)

    assert time.monotonic() - started < _WAIT_S
    assert not group_alive(stubborn_group.pid)
    assert stubborn_group.poll() == -signal.SIGKILL


async def test_stop_group_of_a_group_already_gone_returns_at_once(zombie_group: int) -> None:
    started = time.monotonic()

    await stop_group(zombie_group, grace_s=_WAIT_S)

    assert time.monotonic() - started < _WAIT_S


def test_kill_marked_kills_only_processes_carrying_the_token() -> None:
    token = secrets.token_hex(8)
    with _marked_sleep(token) as marked, _marked_sleep(f"{token}0") as other:
        try:
            assert kill_marked(token) == 1

            assert marked.wait(timeout=_WAIT_S) == -signal.SIGKILL
            assert other.poll() is None
        finally:
            other.kill()


def test_kill_marked_catches_a_marked_process_that_left_its_parent() -> None:
    """A marked grandchild is found by its environment, wherever it sits in the process tree."""
    token = secrets.token_hex(8)
    env = {"PATH": os.environ["PATH"], RUN_MARKER: token}
    script = "setsid sleep 30 & echo $!; wait"
    with subprocess.Popen(["sh", "-c", script], env=env, stdout=subprocess.PIPE) as shell:
        assert shell.stdout is not None
        grandchild = int(shell.stdout.readline())

        assert kill_marked(token) == 2

        assert shell.wait(timeout=_WAIT_S) == -signal.SIGKILL
        assert not _is_alive(grandchild)


def _is_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_kill_marked_finds_nothing_for_an_unused_token() -> None:
    assert kill_marked(secrets.token_hex(8)) == 0


def test_kill_marked_without_proc_kills_nothing(no_proc: None) -> None:
    token = secrets.token_hex(8)
    with _marked_sleep(token) as marked:
        try:
            assert kill_marked(token) == 0
            assert marked.poll() is None
        finally:
            marked.kill()
