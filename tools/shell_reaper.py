"""The reaper: a tiny supervisor in front of every shell command, so nothing it starts outlives us.

    python -I -S shell_reaper.py FD -- ARGV...

It makes itself a child subreaper (orphaned descendants are re-parented to it, not to init), runs
ARGV in its own process group (the runner starts the reaper in a new session), and then:

- when FD reads EOF, the orchestrator is gone: FD is the read end of a pipe whose write end only
  the orchestrator holds, and the kernel closes that on any death, SIGKILL included. The reaper
  then SIGKILLs every descendant, in rounds until none is left, and exits. A pipe rather than
  `PR_SET_PDEATHSIG`, which fires when the spawning *thread* exits (trio spawns from pooled
  worker threads) and is set only after the child has started (a death in between goes unseen);
- when ARGV exits, it stops what ARGV left behind (SIGTERM, `GRACE_S`, SIGKILL) and exits with
  ARGV's status (128+N when signal N ended it: the number the runner reports either way).

SIGTERM, SIGINT and SIGHUP sent to the group reach the command too; the reaper only notes them and
stays to finish the cleanup. It runs isolated (`-I -S`) for a fast start (~20 ms), so it imports
nothing of ours and keeps to cheap stdlib modules; `ctypes` calls `prctl`.

What survives a `kill -9` of the orchestrator, by mode:

- Sandboxed (bubblewrap): nothing. The command's processes all live in bwrap's PID namespace,
  below the reaper; SIGKILL to the namespace's init (sent from outside it, so it cannot be
  refused) makes the kernel kill every process inside, however it detached (setsid, double fork,
  scrubbed environment). The command cannot see or signal the reaper, which is outside the
  namespace. bwrap's own `--die-with-parent` ties it to the reaper as a second line.
- Unisolated (sandbox off or unusable): nothing the command started *as a descendant*, detached
  or not, while the reaper lives: a subreaper keeps even double-forked daemons in its tree. Not
  covered: processes started through a service rather than forked (`at`, `systemd-run`, ssh, a
  container daemon), and a command that kills the reaper itself (same user, same process group:
  `kill -9 0` does) before the orchestrator dies; the runner's group and marker sweep then still
  applies while the orchestrator lives. Without `ctypes` (no subreaper) descendants whose parent
  already exited re-parent to init and are missed.
- No Python to run the reaper (`sys.executable` empty): commands run without it, as before.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from collections.abc import Sequence

GRACE_S = 0.5
"""How long what a finished command left behind gets between SIGTERM and SIGKILL."""
_KILL_WAIT_S = 5.0
_POLL_S = 0.02
_PR_SET_CHILD_SUBREAPER = 36
_EXIT_CANNOT_RUN = 127
_EXIT_ORPHANED = 128 + signal.SIGKILL
_NOTED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_DEFAULTED = (signal.SIGPIPE, signal.SIGXFSZ)
"""Python starts with these ignored, and an ignored signal stays ignored across exec."""
_SCRIPT = os.path.abspath(__file__)


def reaper_argv(argv: Sequence[str], parent_fd: int, *, python: str | None = None) -> list[str]:
    """Return argv that runs `argv` under the reaper, watching `parent_fd` (unchanged without a
    Python to run it).

    The caller spawns it with `pass_fds=(parent_fd,)`, keeps the pipe's write end open (and out of
    every other child) until the reaper is reaped, and starts it in a new session: the reaper's
    process group is the command's.
    """
    python = sys.executable if python is None else python
    if not python:
        return list(argv)
    return [python, "-I", "-S", _SCRIPT, str(parent_fd), "--", *argv]


def main(args: Sequence[str]) -> int:
    """Run `FD -- ARGV...` as described in the module docstring; return the exit status."""
    if len(args) < 3 or args[1] != "--" or not args[0].isdigit():
        os.write(2, b"usage: shell_reaper.py FD -- ARGV...\n")
        return 2
    parent_fd = int(args[0])
    os.set_inheritable(parent_fd, False)  # the command has no use for it
    _become_subreaper()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    for signum in (signal.SIGCHLD, *_NOTED):
        signal.signal(signum, _note)  # a handler (not SIG_IGN, which exec would pass on)
    command = list(args[2:])
    try:
        # Our environment is the one the runner chose for the command: passed on unread.
        environ = os.environ  # noqa: TID251
        child = os.posix_spawn(command[0], command, environ, setsigdef=_DEFAULTED)
    except OSError as exc:
        os.write(2, f"cannot run {command[0]}: {exc}\n".encode(errors="replace"))
        return _EXIT_CANNOT_RUN
    lifeline = _Lifeline(parent_fd, wake_r)
    status = _wait_for(child, lifeline)
    if status is None:
        _kill_descendants()
        return _EXIT_ORPHANED
    if not _stop_descendants(lifeline):
        _kill_descendants()
    return status


def _note(signum: int, frame: object) -> None:
    """Do nothing: the wakeup fd already woke the loop, and group signals reach the command."""


def _become_subreaper() -> None:
    try:
        import ctypes  # here: a Python built without it still runs commands

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (ImportError, OSError, AttributeError):
        return  # degraded, as the module docstring says


class _Lifeline:
    """Waits for a signal (through the wakeup pipe) or for the orchestrator's death (EOF).

    `poll`, not `select`: the orchestrator's descriptor number may be past select's 1024.
    """

    def __init__(self, parent_fd: int, wake_r: int) -> None:
        self._parent_fd = parent_fd
        self._wake_r = wake_r
        self._poller = select.poll()
        self._poller.register(parent_fd, select.POLLIN)
        self._poller.register(wake_r, select.POLLIN)

    def is_cut(self, timeout_s: float | None) -> bool:
        """Wait up to `timeout_s` (None: no limit); True once the orchestrator is gone."""
        events = self._poller.poll(None if timeout_s is None else timeout_s * 1000)
        _drain(self._wake_r)
        # Nobody writes to that pipe: any event on it (POLLIN at EOF, POLLHUP) means EOF.
        return any(fd == self._parent_fd for fd, _ in events)


def _wait_for(child: int, lifeline: _Lifeline) -> int | None:
    """Wait until `child` exits (its status) or the orchestrator dies (None)."""
    while True:
        status = _reap(child)
        if status is not None:
            return status
        if lifeline.is_cut(None):
            return None


def _stop_descendants(lifeline: _Lifeline) -> bool:
    """SIGTERM what the command left; True if it all exited within the grace."""
    first = descendants(os.getpid())
    if not first:
        return True
    _send(first, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while (left := deadline - time.monotonic()) > 0:
        # Grandchildren send us no SIGCHLD when they exit: poll, and watch the orchestrator.
        if lifeline.is_cut(min(_POLL_S, left)):
            return False
        _reap(None)
        if not descendants(os.getpid()):
            return True
    return False


def _kill_descendants() -> None:
    """SIGKILL every live descendant until none is left (or `_KILL_WAIT_S` has passed).

    Rounds catch processes forked, or re-parented to us, while a round was being sent.
    """
    deadline = time.monotonic() + _KILL_WAIT_S
    while time.monotonic() < deadline:
        _reap(None)
        pids = descendants(os.getpid())
        if not pids:
            return
        _send(pids, signal.SIGKILL)
        time.sleep(_POLL_S / 4)


def descendants(root: int) -> list[int]:
    """Live (not zombie) processes below `root`, found through the parent ids in /proc."""
    children: dict[int, list[int]] = {}
    live: set[int] = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as file:
                stat = file.read()
        except OSError:
            continue  # gone meanwhile
        # The fields after the parenthesised name (which may itself hold spaces and parens).
        fields = stat.rsplit(b")", 1)[-1].split()
        pid = int(name)
        children.setdefault(int(fields[1]), []).append(pid)
        if fields[0] not in (b"Z", b"X"):
            live.add(pid)
    found: list[int] = []
    stack = list(children.get(root, ()))
    while stack:
        pid = stack.pop()
        if pid in live:
            found.append(pid)
        stack.extend(children.get(pid, ()))
    return found


def _send(pids: Sequence[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            continue  # gone meanwhile, or not ours to stop


def _reap(child: int | None) -> int | None:
    """Reap every exited child (orphans included); return `child`'s exit status if it was one."""
    status: int | None = None
    while True:
        try:
            pid, raw = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status
        if pid == 0:
            return status
        if pid == child:
            code = os.waitstatus_to_exitcode(raw)
            status = 128 - code if code < 0 else code


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        return  # empty: nothing more to read


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
