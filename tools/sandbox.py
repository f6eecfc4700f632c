"""OS isolation for model-run commands with bubblewrap: no network, read-only host, own PIDs.

`Sandbox.detect()` checks once per process that bwrap exists *and* works here (containers often
forbid the namespaces it needs). When it does not, the sandbox reports itself unavailable, logs
`sandbox_unavailable` once, and commands run unisolated rather than not at all. Unisolated
commands started as root still lose every capability (`without_capabilities`), as inside bwrap.
Sandboxed processes die with their launcher: `--die-with-parent` ties bwrap to it, and the PID
namespace (`--unshare-pid`) ends every process inside when its init dies (see `shell_reaper`).

Folders of the workspace passed as `masked` (the orchestrator's run store, see
`workspace.run_store_mounts`) are covered by an empty read-only tmpfs after the workspace is bound:
a command sees them empty and cannot write there. Unisolated, nothing masks them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import structlog

from orchestrator.settings import process_environment

_PROBE_TIMEOUT_S = 10.0
_HOME_SECRETS = (
    ".ssh",
    ".aws",
    ".azure",
    ".gnupg",
    ".netrc",
    ".git-credentials",
    ".pypirc",
    ".npmrc",
    ".docker",
    ".kube",
    ".config/gh",
    ".config/gcloud",
    ".config/openai",
)
"""Files under $HOME that hold credentials: the sandbox shows empty ones instead."""

DEFAULT_TMP_SIZE = 1024 * 1024 * 1024
"""Cap on the private /tmp: it is a tmpfs, so whatever a command writes there sits in RAM."""

_SETPRIV_FLAGS = ("--bounding-set=-all", "--inh-caps=-all", "--ambient-caps=-all")
"""Empty the bounding, inheritable and ambient sets: root then execs with no capabilities."""

_probe_lock = threading.Lock()


@dataclass(frozen=True, slots=True, kw_only=True)
class _Probe:
    problem: str | None
    """Why bwrap cannot be used here; None when it works."""
    sizes_tmpfs: bool
    """Whether this bwrap has `--size` (0.8 and later) to cap a tmpfs."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Sandbox:
    """How to wrap a command in bubblewrap; `wrap` is the identity when bwrap is unusable."""

    bwrap: str | None
    """Path of a working bwrap binary; None when commands must run unisolated."""
    status_message: str
    """One line saying whether commands are isolated, and if not, why."""
    network: bool = False
    """Keep the host network (off by default: `--unshare-net` leaves only a private loopback)."""
    hidden_paths: tuple[Path, ...] = ()
    """Paths replaced by empty ones inside the sandbox (credential files under $HOME)."""
    tmp_size: int | None = None
    """Bytes the private /tmp may hold; None leaves it uncapped (older bwrap cannot cap it)."""

    @property
    def is_available(self) -> bool:
        """Whether `wrap` isolates anything."""
        return self.bwrap is not None

    @classmethod
    def detect(
        cls,
        *,
        bwrap: str | None = None,
        on_unavailable: Callable[[str], None] | None = None,
        network: bool = False,
        tmp_size: int | None = DEFAULT_TMP_SIZE,
    ) -> Sandbox:
        """Find bwrap and check, once per process and binary, that it can run a command here.

        Blocks for the first probe (a few milliseconds); call it at wiring time or in a thread.

        Args:
            bwrap: The binary to use; found on PATH when None.
            on_unavailable: Told the reason whenever the result is unavailable (the structlog
                warning `sandbox_unavailable` is logged only once per process).
            network: Keep the host network inside the sandbox.
            tmp_size: Cap on the private /tmp, where this bwrap supports one.
        """
        path = bwrap or shutil.which("bwrap", path=process_environment().get("PATH"))
        probe = _Probe(problem="bubblewrap (bwrap) is not installed", sizes_tmpfs=False)
        if path is not None:
            probe = _probe(path)
        if path is None or probe.problem is not None:
            message = f"commands run WITHOUT isolation: {probe.problem}"
            if on_unavailable is not None:
                on_unavailable(message)
            return cls(bwrap=None, status_message=message)
        return cls(
            bwrap=path,
            status_message=f"commands run in a bubblewrap sandbox ({path})",
            network=network,
            hidden_paths=_home_secrets(),
            tmp_size=tmp_size if probe.sizes_tmpfs else None,
        )

    @classmethod
    def disabled(cls, reason: str = "the sandbox is disabled by configuration") -> Sandbox:
        """A sandbox that isolates nothing, on purpose."""
        return cls(bwrap=None, status_message=f"commands run WITHOUT isolation: {reason}")

    def wrap(
        self,
        argv: Sequence[str],
        cwd: Path,
        *,
        writable: bool = True,
        readable: Sequence[Path] = (),
        masked: Sequence[Path] = (),
        new_session: bool = True,
    ) -> list[str]:
        """Return argv that runs `argv` in `cwd` inside the sandbox (unchanged when unavailable).

        Args:
            argv: The command to run.
            cwd: The workspace: the only host directory the command may write.
            writable: Mount the workspace read-write; False makes it read-only too.
            readable: Extra directories to show read-only even under the private /tmp (logs),
                or under a masked folder.
            masked: Existing folders inside the workspace to show empty and read-only (the run
                store). Give the outermost only: a mask inside another would show as a folder.
            new_session: Pass `--new-session` (no controlling terminal, so no TIOCSTI). Give False
                only when the caller starts bwrap in a new session itself, as our runner does:
                bwrap's flag would also move the namespace's init out of the caller's process
                group, and the runner waits on that group to know the namespace is empty.
        """
        if self.bwrap is None:
            return list(argv)
        workspace = str(cwd.resolve())
        args = [self.bwrap, "--die-with-parent", "--cap-drop", "ALL"]
        if new_session:
            args.append("--new-session")
        args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts"]
        if not self.network:
            args.append("--unshare-net")
        args += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        if self.tmp_size is not None:
            args += ["--size", str(self.tmp_size)]
        args += ["--tmpfs", "/tmp"]
        if Path("/run").is_dir() and not Path("/run").is_symlink():
            # Host daemons' sockets (docker, dbus, agents) live here; connect() ignores ro mounts.
            args += ["--tmpfs", "/run"]
        args += ["--bind" if writable else "--ro-bind", workspace, workspace]
        # Only existing folders: bwrap would create a missing mount point in the host workspace.
        masks = [str(path.resolve()) for path in masked if path.is_dir()]
        for mask in masks:
            args += ["--tmpfs", mask]
        for path in (*readable, *_interpreter_dirs(cwd)):
            if path.is_dir():
                args += ["--ro-bind", str(path.resolve()), str(path.resolve())]
        for mask in masks:
            # After the readable binds, which may need mount points made inside the mask.
            args += ["--remount-ro", mask]
        for path in self.hidden_paths:
            hidden = str(path)
            args += ["--tmpfs", hidden] if path.is_dir() else ["--ro-bind", "/dev/null", hidden]
        args += ["--setenv", "TMPDIR", "/tmp", "--chdir", workspace, "--", *argv]
        return args


def without_capabilities(argv: Sequence[str]) -> list[str]:
    """Return argv that runs `argv` with no capabilities when we are root (unchanged otherwise).

    Why: a process of the same user without CAP_SYS_PTRACE cannot read a non-dumpable process's
    `/proc/<pid>/environ` or `mem` (see `orchestrator.secrets.protect_process_secrets`), nor those
    of any process holding capabilities it lacks. Root keeps CAP_SYS_PTRACE unless it drops it, so
    an unsandboxed command run by root gets the empty capability set bwrap's `--cap-drop ALL` gives.
    Uses util-linux `setpriv`; without a working one, root commands keep their capabilities and
    `capabilities_kept` is logged once. Blocks for that probe once per process (a few ms).
    """
    if os.geteuid() != 0:
        return list(argv)
    with _probe_lock:
        prefix = _setpriv_prefix()
    return [*prefix, "--", *argv] if prefix else list(argv)


def _interpreter_dirs(workspace: Path) -> tuple[Path, ...]:
    """This Python's environment when the private /tmp or /run would hide it (a venv in a temp
    checkout), read-only, so a check such as `<this python> -m pytest` runs inside too."""
    hidden_roots = (Path("/tmp"), Path("/run"))
    found: list[Path] = []
    for prefix in {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}:
        if any(prefix.is_relative_to(root) for root in hidden_roots) and not (
            prefix.is_relative_to(workspace.resolve())
        ):
            found.append(prefix)
    return tuple(sorted(found))


@cache
def _setpriv_prefix() -> tuple[str, ...]:
    # A fact about this host, probed once per process like bwrap: an old setpriv lacking a flag
    # would otherwise fail every command instead of only losing the drop.
    setpriv = shutil.which("setpriv", path=process_environment().get("PATH"))
    if setpriv is None:
        problem = "util-linux setpriv is not installed"
    else:
        argv = [setpriv, *_SETPRIV_FLAGS, "--", "/bin/sh", "-c", "true"]
        problem = _run_quietly(argv, name="setpriv")
    if setpriv is None or problem is not None:
        structlog.get_logger(__name__).warning("capabilities_kept", reason=problem)
        return ()
    return (setpriv, *_SETPRIV_FLAGS)


def _run_quietly(argv: Sequence[str], *, name: str) -> str | None:
    """Run a probe command; return why `name` failed, or None."""
    try:
        completed = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_PROBE_TIMEOUT_S,
            env={"PATH": "/usr/bin:/bin"},
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{name} could not be run: {exc}"
    if completed.returncode != 0:
        detail = completed.stderr.decode("utf-8", errors="replace").strip().splitlines()
        return f"{name} does not work here: {detail[-1] if detail else completed.returncode}"
    return None


def _home_secrets() -> tuple[Path, ...]:
    home = process_environment().get("HOME")
    if not home:
        return ()
    candidates = (Path(home) / name for name in _HOME_SECRETS)
    return tuple(path for path in candidates if path.exists() and not path.is_symlink())


@cache
def _probe_cached(bwrap: str) -> _Probe:
    # A fact about this host that does not change while we run, so it is probed once per process.
    sizes_tmpfs = "--size" in _help_text(bwrap)
    problem = _run_probe(bwrap, tmp_size=DEFAULT_TMP_SIZE if sizes_tmpfs else None)
    if problem is not None:
        structlog.get_logger(__name__).warning("sandbox_unavailable", bwrap=bwrap, reason=problem)
    return _Probe(problem=problem, sizes_tmpfs=sizes_tmpfs)


def _probe(bwrap: str) -> _Probe:
    with _probe_lock:
        return _probe_cached(bwrap)


def _help_text(bwrap: str) -> str:
    try:
        completed = subprocess.run(
            [bwrap, "--help"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_PROBE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return completed.stdout.decode("utf-8", errors="replace")


def _run_probe(bwrap: str, *, tmp_size: int | None) -> str | None:
    """Run `true` under the exact flags we use; return why it failed, or None."""
    sandbox = Sandbox(bwrap=bwrap, status_message="probe", tmp_size=tmp_size)
    with tempfile.TemporaryDirectory(prefix="orchestrator-bwrap-probe-") as workspace:
        return _run_quietly(sandbox.wrap(["/bin/sh", "-c", "true"], Path(workspace)), name="bwrap")
