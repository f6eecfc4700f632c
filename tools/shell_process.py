"""Ending a command's processes for good: its process group, then anything carrying its marker.

Every command starts a new session, so its process group holds the shell and whatever it forks.
`setsid` (or a double fork plus `setsid`) escapes the group; on Linux those escapees are still found
by the `ORCH_SHELL_RUN=<token>` variable they inherit, unless they also scrub their environment.
Only the sandbox's PID namespace catches those here; should we die, `shell_reaper` (their
subreaper) catches them too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import anyio

from .shell_env import RUN_MARKER

GRACE_S = 0.5
"""How long SIGTERM may take before SIGKILL."""
_KILL_WAIT_S = 2.0
_POLL_S = 0.02
_SWEEP_ROUNDS = 5
_PROC = Path("/proc")


def signal_group(pgid: int, signum: int) -> None:
    """Send `signum` to every process in group `pgid`, if any is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def group_alive(pgid: int) -> bool:
    """Whether group `pgid` has a live member (zombies waiting to be reaped do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not _PROC.is_dir():
        return True
    return any(_is_live_member(entry, pgid) for entry in _PROC.iterdir() if entry.name.isdigit())


def _is_live_member(entry: Path, pgid: int) -> bool:
    try:
        stat = (entry / "stat").read_text()
    except OSError:
        return False
    # Fields after the parenthesised command name (which may itself hold spaces and parens).
    fields = stat.rsplit(")", 1)[-1].split()
    return len(fields) > 2 and fields[0] != "Z" and fields[2] == str(pgid)


async def stop_group(pgid: int, *, grace_s: float = GRACE_S) -> None:
    """SIGTERM the group, allow `grace_s`, SIGKILL what is left, and wait until it is gone."""
    if not await _alive(pgid):
        return
    signal_group(pgid, signal.SIGTERM)
    if await _wait_gone(pgid, grace_s):
        return
    signal_group(pgid, signal.SIGKILL)
    await _wait_gone(pgid, _KILL_WAIT_S)


async def _alive(pgid: int) -> bool:
    return await anyio.to_thread.run_sync(group_alive, pgid)


async def _wait_gone(pgid: int, timeout_s: float) -> bool:
    with anyio.move_on_after(timeout_s):
        # No event tells us when another process group is gone: poll /proc.
        while await _alive(pgid):  # noqa: ASYNC110
            await anyio.sleep(_POLL_S)
        return True
    return False


def kill_marked(token: str) -> int:
    """SIGKILL every process whose environment holds `ORCH_SHELL_RUN=<token>`; return how many.

    Blocks (run it in a thread) until those processes are gone or `_KILL_WAIT_S` has passed: a
    process with SIGKILL pending still runs until the scheduler next picks it.
    """
    if not _PROC.is_dir():
        return 0
    needle = f"\0{RUN_MARKER}={token}\0".encode()
    killed: set[int] = set()
    for _ in range(_SWEEP_ROUNDS):  # rounds catch children forked while we were sweeping
        pids = [pid for pid in _marked_pids(needle) if pid != os.getpid()]
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
    deadline = time.monotonic() + _KILL_WAIT_S
    while any(_is_running(pid) for pid in killed) and time.monotonic() < deadline:
        time.sleep(_POLL_S)
    return len(killed)


def _is_running(pid: int) -> bool:
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _marked_pids(needle: bytes) -> list[int]:
    pids: list[int] = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in b"\0" + environ:
            pids.append(int(entry.name))
    return pids
