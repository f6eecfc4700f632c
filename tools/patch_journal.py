"""Applying a patch in a durable run: a write-ahead record before any file is written, and a
replay that skips, finishes or refuses a patch an earlier attempt of the same task started."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

from orchestrator.errors import PatchError
from orchestrator.models import FileChange, PatchRecord, TaskId
from orchestrator.toolkit import EffectLog

from .patch_commit import Change, commit
from .patch_plan import PatchReport, Planner
from .workspace import resolve_in_workspace

ALREADY_APPLIED = (
    "This patch was already applied by an earlier attempt of this task; nothing was written."
)
_COMPLETED = (
    "An earlier attempt of this task was interrupted while applying this patch; "
    "this call finished it, touching only the files it had not reached: {paths}."
)
_NOT_A_FILE = "not a regular file"
"""The state of a path that is neither absent nor a regular file: it matches no sha256."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PatchJournal:
    """Where a durable run journals the patches of one task."""

    effects: EffectLog
    task_id: TaskId


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One operation of a patch, planned on its own so a replay can leave out finished files."""

    paths: tuple[str, ...]
    """The paths it reads or writes, as the model wrote them."""
    plan: Callable[[Planner], None]


def patch_key(text: str) -> str:
    """A patch's identity within its task: the sha256 of its text."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def plan_steps(steps: Sequence[Step], root: Path, *, max_file_bytes: int) -> Planner:
    """Plan every step against the workspace, in order; nothing is written."""
    planner = Planner(root, max_file_bytes=max_file_bytes)
    for step in steps:
        step.plan(planner)
    return planner


def apply_journaled(
    steps: Sequence[Step], root: Path, *, key: str, journal: PatchJournal, max_file_bytes: int
) -> PatchReport:
    """Apply a patch once per task: journal it before writing, or replay an earlier record.

    Raises:
        PatchError: The patch does not fit, or a file it touches was changed by someone else
            since an earlier attempt journaled it; the workspace is unchanged.
        PathEscapeError: A path leads outside the workspace or into a protected place.
    """
    earlier = journal.effects.find(journal.task_id, key)
    if earlier is None:
        planner = plan_steps(steps, root, max_file_bytes=max_file_bytes)
        changes = planner.changes()
        record = PatchRecord(
            task_id=journal.task_id,
            key=key,
            files=tuple(_file_change(change, planner.root) for change in changes),
        )
        write_ahead = partial(journal.effects.record, record) if changes else None
        commit(changes, root=planner.root, before_write=write_ahead)
        return planner.report()
    pending = _pending(earlier, root)
    if not pending:
        return _replayed(earlier, note=ALREADY_APPLIED, replay="already_applied")
    if len(pending) == len(earlier.files):
        # The crash came before the first write: apply as planned then, without a second record.
        planner = plan_steps(steps, root, max_file_bytes=max_file_bytes)
        _check_planned(planner, earlier, pending)
        commit(planner.changes(), root=planner.root)
        return planner.report()
    planner = _plan_pending(steps, root, pending, max_file_bytes=max_file_bytes)
    _check_planned(planner, earlier, pending)
    commit(planner.changes(), root=planner.root)
    note = _COMPLETED.format(paths=", ".join(sorted(pending)))
    return _replayed(earlier, note=note, replay="completed")


def _file_change(change: Change, root: Path) -> FileChange:
    before = change.before.data if change.before is not None else None
    return FileChange(
        path=change.target.relative_to(root).as_posix(),
        before_sha256=_sha256(before),
        after_sha256=_sha256(change.data),
    )


def _sha256(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def _pending(record: PatchRecord, root: Path) -> frozenset[str]:
    """The recorded files still as they were before the patch; every other one is as after it.

    Raises:
        PatchError: A file is in neither state: someone else changed it since.
    """
    pending: set[str] = set()
    for file in record.files:
        try:
            now = _current_sha256(resolve_in_workspace(root, file.path))
        except OSError as exc:
            raise PatchError(
                f"Cannot read {file.path}: {exc.strerror or exc}", path=file.path
            ) from exc
        if now == file.before_sha256:
            pending.add(file.path)
        elif now != file.after_sha256:
            raise PatchError(
                f"{file.path} was changed by someone else after an earlier attempt of this task "
                "started this same patch (it is neither as before nor as after the patch); "
                "nothing was written. Read the file again and send a new patch.",
                path=file.path,
            )
    return frozenset(pending)


def _current_sha256(path: Path) -> str | None:
    """The sha256 of a regular file's bytes; None when nothing is there."""
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not stat.S_ISREG(info.st_mode):
        return _NOT_A_FILE
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _plan_pending(
    steps: Sequence[Step], root: Path, pending: frozenset[str], *, max_file_bytes: int
) -> Planner:
    """Plan only the steps that touch a file still as before: the others were written already."""
    planner = Planner(root, max_file_bytes=max_file_bytes)
    try:
        for step in steps:
            touched = (
                resolve_in_workspace(planner.root, path, for_write=True)
                .relative_to(planner.root)
                .as_posix()
                for path in step.paths
            )
            if not pending.isdisjoint(touched):
                step.plan(planner)
    except PatchError as exc:
        raise PatchError(
            "An earlier attempt of this task was interrupted while applying this same patch, "
            f"and the rest of it cannot be applied now: {exc} Read the files again and send a "
            "new patch.",
            path=exc.path,
            hunk=exc.hunk,
        ) from exc
    return planner


def _check_planned(planner: Planner, record: PatchRecord, pending: frozenset[str]) -> None:
    """Refuse a plan that would not take exactly the pending files from before to after."""
    files = {file.path: file for file in record.files if file.path in pending}
    for change in planner.changes():
        file = files.pop(change.target.relative_to(planner.root).as_posix(), None)
        if file is None or _file_change(change, planner.root) != file:
            raise _mismatch(change.shown)
    for path in files:
        raise _mismatch(path)


def _mismatch(path: str) -> PatchError:
    return PatchError(
        f"{path}: this patch no longer has the effect an earlier attempt of this task journaled "
        "for it (a file it reads was changed since); nothing was written. Read the files again "
        "and send a new patch.",
        path=path,
    )


def _replayed(
    record: PatchRecord, *, note: str, replay: Literal["already_applied", "completed"]
) -> PatchReport:
    """The success report of a patch that is now fully applied, from its record."""
    added = tuple(file.path for file in record.files if file.before_sha256 is None)
    deleted = tuple(file.path for file in record.files if file.after_sha256 is None)
    modified = tuple(
        file.path
        for file in record.files
        if file.before_sha256 is not None and file.after_sha256 is not None
    )
    return PatchReport(
        added=added,
        modified=modified,
        deleted=deleted,
        notes=(note,),
        replay=replay,
    )
