"""Writing a planned set of file changes all-or-nothing: temp files, `os.replace`, rollback.

Every new content is written to a temp file beside its target first; only then are targets
replaced one by one. If a replace fails, the targets already replaced are restored from the
originals kept in memory, so the workspace ends as it started.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import PatchError


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """A target as it was when the patch was planned, to restore it and to notice a race."""

    data: bytes
    """The bytes the patch was matched against."""
    mode: int
    """Permission bits, kept on rewrite (an executable script stays executable)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """Set `target` to `data`, or remove it when `data` is None."""

    target: Path
    shown: str
    """The path as the model wrote it, for messages."""
    data: bytes | None
    before: Snapshot | None
    """The file before the patch; None when it did not exist."""


def snapshot(path: Path) -> Snapshot | None:
    """Read a regular file's bytes and mode; None when nothing is there."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    data = path.read_bytes()
    return Snapshot(data=data, mode=stat.S_IMODE(info.st_mode))


def commit(
    changes: Sequence[Change], *, root: Path, before_write: Callable[[], None] | None = None
) -> None:
    """Apply every change or none; on failure raise `PatchError` with the workspace unchanged.

    The caller holds the workspace lock (`patch_lock`) from planning on, so other patches wait;
    a writer that takes no lock is caught by comparing each target with its snapshot here.

    Args:
        changes: The planned writes and removals.
        root: The workspace root; folders are created up to it, never above.
        before_write: Called once the race check passed and before the first byte is written
            (the write-ahead journal); whatever it raises propagates and nothing is written.
    """
    _check_unchanged(changes)
    if before_write is not None:
        before_write()
    created: list[Path] = []
    temps: dict[Path, Path] = {}
    done: list[Change] = []
    current: Change | None = None
    try:
        for current in changes:
            if current.data is not None:
                _make_parents(current.target.parent, root, created)
                temps[current.target] = _write_temp(current.target, current.data, current.before)
        for current in changes:
            if current.data is None:
                os.unlink(current.target)
            else:
                os.replace(temps[current.target], current.target)
                del temps[current.target]
            done.append(current)
    except OSError as exc:
        problems = _roll_back(done, temps, created)
        shown = current.shown if current is not None else None
        raise PatchError(_failure_message(exc, shown, problems), path=shown) from exc


def _check_unchanged(changes: Sequence[Change]) -> None:
    """Refuse to write over a file whose content is no longer what the patch was matched against.

    Contents are compared, not stat data: a same-size write within the file system's mtime
    granularity leaves (size, mtime) as they were.
    """
    for change in changes:
        before = change.before.data if change.before is not None else None
        try:
            unchanged = _holds(change.target, before)
        except OSError as exc:
            raise PatchError(
                f"Cannot read {change.shown} again before writing it: {exc.strerror or exc}; "
                "nothing was written.",
                path=change.shown,
            ) from exc
        if not unchanged:
            raise PatchError(
                f"{change.shown} changed while the patch was being applied (someone else wrote "
                "it after the patch was matched against it); nothing was written. Read it again "
                "and retry.",
                path=change.shown,
            )


def _holds(path: Path, expected: bytes | None) -> bool:
    """Whether `path` is a regular file holding `expected`, or absent when that is None."""
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return expected is None
    if expected is None or not stat.S_ISREG(info.st_mode) or info.st_size != len(expected):
        return False
    return path.read_bytes() == expected


def _make_parents(folder: Path, root: Path, created: list[Path]) -> None:
    missing: list[Path] = []
    while folder != root and not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        os.mkdir(path)
        created.append(path)


def _write_temp(target: Path, data: bytes, before: Snapshot | None) -> Path:
    """Write `data` to a new file beside `target`; the kernel's umask sets a new file's mode."""
    temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.apply_patch.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(temp, flags, 0o666 if before is None else 0o600)
    try:
        if before is not None:
            os.fchmod(fd, before.mode)
        with os.fdopen(fd, "wb", closefd=False) as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError:
        os.close(fd)
        temp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return temp


def _roll_back(done: list[Change], temps: dict[Path, Path], created: list[Path]) -> list[str]:
    """Undo the replaced targets from their snapshots; return what could not be restored."""
    problems: list[str] = []
    for change in reversed(done):
        try:
            if change.before is None:
                os.unlink(change.target)
            else:
                os.replace(
                    _write_temp(change.target, change.before.data, change.before), change.target
                )
        except OSError as exc:
            problems.append(f"{change.shown}: {exc.strerror or exc}")
    for temp in temps.values():
        temp.unlink(missing_ok=True)
    for folder in reversed(created):
        try:
            os.rmdir(folder)
        except OSError as exc:
            problems.append(f"{folder.name}/: {exc.strerror or exc}")
    return problems


def _failure_message(exc: OSError, shown: str | None, problems: list[str]) -> str:
    message = f"Could not write {shown or 'the patch'}: {exc.strerror or exc}."
    if problems:
        return message + " Rolling back failed for: " + "; ".join(problems)
    return message + " Every change of this patch was rolled back; the workspace is unchanged."
