"""Path confinement for file tools: a path a model names must lead to a place inside the workspace.

Every file-touching tool resolves model-supplied paths through `resolve_in_workspace` before I/O.

The orchestrator's own state is off limits even where it sits inside the workspace (the default
run store is `<workspace>/.orchestrator/runs`). `RunStoreGuard` says what that state is:
`<workspace>/.orchestrator/`, the run root (`run_dir.parent`) and any folder holding a run store's
index. A path into it is refused like a path out of the workspace, through a symbolic link too,
and listings skip it. The shell sandbox masks the same folders (`run_store_mounts`).
"""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import ConfigError, PathEscapeError

MAX_TEXT_BYTES = 16 * 1024 * 1024
"""Largest file the text tools read or rewrite; a bigger file is refused, not loaded."""

STATE_DIR = ".orchestrator"
"""The orchestrator's folder in a workspace; the default run store is `.orchestrator/runs`."""
RUN_STORE_INDEX = "runs.sqlite3"
"""The index a run store keeps at its root (`orchestrator.store`); a folder holding it is one."""

_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def resolve_in_workspace(
    root: Path, path: str, *, for_write: bool = False, run_dir: Path | None = None
) -> Path:
    """Resolve a model-supplied relative path to an absolute path that stays inside `root`.

    Args:
        root: The workspace root; it must exist and be a directory.
        path: The path as the model wrote it, relative to `root` with `/` separators.
        for_write: Also refuse targets that writing would make unsafe: the root itself, anything
            under a `.git` folder, a symbolic link, a hard-linked file, a device or a pipe.
        run_dir: The run's directory (`ToolContext.run_dir`); its run root is refused too when it
            lies inside the workspace. Without it only `.orchestrator/` and folders holding a run
            store's index are refused.

    Returns:
        The absolute path with every existing symbolic link resolved.

    Raises:
        PathEscapeError: The path is malformed, leads outside the workspace or into the run
            store; the message says what to change.
        ConfigError: `root` is not an existing directory (a wiring mistake, not the model's).
    """
    base = workspace_root(root)
    parts = _relative_parts(path)
    if for_write:
        _refuse_git(parts, path)
    lexical = base.joinpath(*parts)
    resolved = Path(os.path.realpath(lexical))
    if not resolved.is_relative_to(base):
        raise PathEscapeError(_escape_message(base, parts, path), path=path)
    _refuse_loop(lexical, path)
    _refuse_store(RunStoreGuard.of(base, run_dir), lexical, resolved, path)
    if for_write:
        # A symlink inside the workspace may still point into .git; check where it really lands.
        _refuse_git(resolved.relative_to(base).parts, path)
        _check_write_target(base, lexical, resolved, path)
    return resolved


def workspace_root(root: Path) -> Path:
    """The resolved workspace root, so containment checks compare like with like."""
    resolved = Path(os.path.realpath(root))
    if not resolved.is_dir():
        raise ConfigError(f"workspace root {str(root)!r} is not an existing directory")
    return resolved


@dataclass(frozen=True, slots=True)
class RunStoreGuard:
    """Which folders of a workspace hold the orchestrator's state: tools neither see nor touch them.

    A store folder is `<workspace>/.orchestrator`, the run root, or a folder holding
    `RUN_STORE_INDEX`; everything below one is off limits. The workspace root itself never is.
    """

    base: Path
    """The resolved workspace root."""
    state_dir: Path | None = None
    """Where `.orchestrator` really is, when a symbolic link moves it elsewhere in `base`."""
    run_root: Path | None = None
    """The resolved run root, when it lies strictly inside `base`."""

    @classmethod
    def of(cls, base: Path, run_dir: Path | None) -> RunStoreGuard:
        """The guard for resolved root `base`; `run_dir` names the run root (its parent).

        When the run root is the workspace itself, only the run's own folder is guarded.
        """
        state = _strictly_inside(base, Path(os.path.realpath(base / STATE_DIR)))
        if run_dir is None:
            return cls(base, state_dir=state)
        run = Path(os.path.realpath(run_dir))
        run_root = _strictly_inside(base, run.parent) or _strictly_inside(base, run)
        return cls(base, state_dir=state, run_root=run_root)

    def store_of(self, path: Path) -> Path | None:
        """The store folder `path` (absolute, under `base`) is in or is, checked from the top."""
        current = self.base
        for part in path.relative_to(self.base).parts:
            current = current / part
            if self.is_store(current):
                return current
        return None

    def is_store(self, folder: Path) -> bool:
        """Whether `folder`, strictly under `base`, is a store folder itself (parents unchecked)."""
        if folder.parent == self.base and _is_state_name(folder.name):
            return True
        if folder in (self.state_dir, self.run_root):
            return True
        return os.path.isfile(folder / RUN_STORE_INDEX)


def run_store_mounts(root: Path, run_dir: Path | None) -> tuple[Path, ...]:
    """The existing store folders a sandbox should mask: `.orchestrator` and the run root.

    Resolved, strictly inside the resolved `root`, outermost only (a mask covers what is below
    it). Folders that hold a store index elsewhere are not searched for. A missing `root` has none.
    """
    base = Path(os.path.realpath(root))
    if not base.is_dir():
        return ()
    guard = RunStoreGuard.of(base, run_dir)
    found = sorted({f for f in (guard.state_dir, guard.run_root) if f is not None and f.is_dir()})
    return tuple(f for f in found if not any(f != o and f.is_relative_to(o) for o in found))


def _strictly_inside(base: Path, path: Path) -> Path | None:
    return path if path != base and path.is_relative_to(base) else None


def is_text(data: bytes) -> bool:
    """Whether bytes are text a patch may rewrite: valid UTF-8 without NUL bytes."""
    if b"\x00" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def is_text_file(path: Path, *, max_bytes: int = MAX_TEXT_BYTES) -> bool:
    """Whether `path` is a regular file small enough to load that holds UTF-8 text."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
            return False
        return is_text(path.read_bytes())
    except OSError:
        return False


def _relative_parts(path: str) -> tuple[str, ...]:
    """Split a model path into components, refusing every form that could mean somewhere else."""
    if not path.strip():
        raise PathEscapeError("empty path: name a file relative to the workspace root", path=path)
    if "\x00" in path:
        raise PathEscapeError(f"path {path!r} contains a NUL byte", path=path)
    if _CONTROL.search(path):
        raise PathEscapeError(f"path {path!r} contains a control character", path=path)
    if "\\" in path:
        raise PathEscapeError(
            f"path {path!r} contains a backslash: use '/' to separate folders", path=path
        )
    if path.startswith("/") or _DRIVE.match(path):
        raise PathEscapeError(
            f"absolute path {path!r} refused: give the path relative to the workspace root",
            path=path,
        )
    if path.startswith("~"):
        raise PathEscapeError(
            f"path {path!r} starts with '~': home-relative paths are not supported; "
            "give the path relative to the workspace root",
            path=path,
        )
    parts = tuple(part for part in path.split("/") if part not in ("", "."))
    if ".." in parts:
        raise PathEscapeError(
            f"path {path!r} contains '..': give the path relative to the workspace root "
            "without parent references",
            path=path,
        )
    return parts


def _refuse_loop(lexical: Path, path: str) -> None:
    # realpath gives up quietly on a symlink loop; say so now rather than fail later with ELOOP.
    try:
        os.stat(lexical)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            message = f"path {path!r} runs into a loop of symbolic links"
            raise PathEscapeError(message, path=path) from exc


def _is_git_name(name: str) -> bool:
    # Case-insensitive, and Windows drops trailing dots and spaces: `.GIT` or `.git.` can still
    # reach the repository's metadata on some filesystems.
    return name.rstrip(". ").lower() == ".git"


def _is_state_name(name: str) -> bool:
    # Matched like `.git`: case-insensitive filesystems reach `.orchestrator` as `.Orchestrator.`.
    return name.rstrip(". ").lower() == STATE_DIR


def _refuse_store(guard: RunStoreGuard, lexical: Path, resolved: Path, path: str) -> None:
    """Refuse a path that names, or through a symbolic link reaches, the run store."""
    store = guard.store_of(lexical) or guard.store_of(resolved)
    if store is None:
        return
    where = store.relative_to(guard.base).as_posix()
    raise PathEscapeError(
        f"path {path!r} is inside the orchestrator's run store ({where!r}): tools cannot read "
        "or write it; work with the project's own files",
        path=path,
    )


def _refuse_git(parts: tuple[str, ...], path: str) -> None:
    if any(_is_git_name(part) for part in parts):
        raise PathEscapeError(
            f"path {path!r} is inside .git: repository metadata cannot be written", path=path
        )


def _check_write_target(base: Path, lexical: Path, resolved: Path, path: str) -> None:
    """Refuse write targets whose effect would not stay a plain in-workspace file write."""
    if resolved == base:
        raise PathEscapeError(f"path {path!r} is the workspace root itself: name a file", path=path)
    try:
        link = os.lstat(lexical)
    except (FileNotFoundError, NotADirectoryError):
        return  # a new file; a file in place of a folder is the caller's error to explain
    except OSError as exc:
        message = f"path {path!r} cannot be inspected: {exc.strerror}"
        raise PathEscapeError(message, path=path) from exc
    if stat.S_ISLNK(link.st_mode):
        target = resolved.relative_to(base).as_posix()
        raise PathEscapeError(
            f"path {path!r} is a symbolic link (to {target!r}): edit the target path instead",
            path=path,
        )
    if stat.S_ISREG(link.st_mode) and link.st_nlink > 1:
        raise PathEscapeError(
            f"path {path!r} is a hard link shared with {link.st_nlink - 1} other name(s), "
            "possibly outside the workspace: refusing to write it",
            path=path,
        )
    if not (stat.S_ISREG(link.st_mode) or stat.S_ISDIR(link.st_mode)):
        raise PathEscapeError(
            f"path {path!r} is not a regular file (device, pipe or socket)", path=path
        )


def _escape_message(base: Path, parts: tuple[str, ...], path: str) -> str:
    """Name the symbolic link that leads out, so the model knows which part of the path to avoid."""
    for count in range(1, len(parts) + 1):
        prefix = base.joinpath(*parts[:count])
        if prefix.is_symlink():
            shown = "/".join(parts[:count])
            return (
                f"path {path!r} leaves the workspace: {shown!r} is a symbolic link to "
                f"{os.readlink(prefix)!r}, outside the workspace root"
            )
    return f"path {path!r} resolves outside the workspace"
