"""apply_patch planning within one patch, replays that cannot finish, and rollbacks that fail."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from orchestrator.errors import PatchError
from orchestrator.models import PatchRecord, TaskId
from orchestrator.tools import patch_commit
from orchestrator.tools.apply_patch import PatchJournal, apply_patch
from orchestrator.tools.patch_commit import Change, commit, snapshot
from orchestrator.tools.patch_plan import PatchReport


class _MemoryLog:
    """An in-memory `EffectLog`."""

    def __init__(self) -> None:
        self.records: list[PatchRecord] = []

    def find(self, task_id: TaskId, key: str) -> PatchRecord | None:
        return next((r for r in self.records if (r.task_id, r.key) == (task_id, key)), None)

    def record(self, record: PatchRecord) -> None:
        self.records.append(record)


def envelope(*lines: str) -> str:
    return "\n".join(["*** Begin Patch", *lines, "*** End Patch"]) + "\n"


def tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): p.read_text() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture
def root(tmp_path: Path) -> Path:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "notes.txt").write_text("one\ntwo\n")
    return workspace


@pytest.fixture
def journal() -> PatchJournal:
    return PatchJournal(effects=_MemoryLog(), task_id=TaskId("t"))


def test_apply_patch_file_added_then_deleted_leaves_nothing(root: Path) -> None:
    report = apply_patch(envelope("*** Add File: tmp.txt", "+x", "*** Delete File: tmp.txt"), root)

    assert tree(root) == {"notes.txt": "one\ntwo\n"}
    assert (report.added, report.deleted) == (("tmp.txt",), ("tmp.txt",))


def test_apply_patch_edits_that_cancel_out_do_not_rewrite_the_file(root: Path) -> None:
    notes = root / "notes.txt"
    os.utime(notes, ns=(1_000_000_000, 1_000_000_000))
    patch = envelope(
        *("*** Update File: notes.txt", "@@", "-one", "+ONE"),
        *("*** Update File: notes.txt", "@@", "-ONE", "+one"),
    )

    report = apply_patch(patch, root)

    assert report == PatchReport(modified=("notes.txt",))
    assert notes.stat().st_mtime_ns == 1_000_000_000  # untouched, not rewritten alike


def test_apply_patch_updates_a_file_added_earlier_in_the_patch(root: Path) -> None:
    patch = envelope(
        *("*** Add File: new.txt", "+draft"),
        *("*** Update File: new.txt", "@@", "-draft", "+final"),
    )

    report = apply_patch(patch, root)

    assert (root / "new.txt").read_text() == "final\n"
    assert (report.added, report.modified) == (("new.txt",), ("new.txt",))


def test_apply_patch_second_add_of_one_file_overwrites_the_first(root: Path) -> None:
    patch = envelope("*** Add File: new.txt", "+first", "*** Add File: new.txt", "+second")

    report = apply_patch(patch, root)

    assert (root / "new.txt").read_text() == "second\n"
    assert report == PatchReport(
        added=("new.txt",), notes=("Add File new.txt overwrote an existing file.",)
    )


def test_apply_patch_refuses_a_file_where_it_creates_a_folder(root: Path) -> None:
    patch = envelope("*** Add File: docs/a.txt", "+a", "*** Add File: docs", "+b")

    with pytest.raises(
        PatchError, match=r"^Cannot overwrite docs: this patch creates it as a folder$"
    ):
        apply_patch(patch, root)
    assert tree(root) == {"notes.txt": "one\ntwo\n"}


def test_snapshot_of_a_missing_file_is_none(root: Path) -> None:
    assert snapshot(root / "missing.txt") is None


def test_commit_refuses_a_target_it_cannot_read_again(root: Path) -> None:
    target = root / ("n" * 300)  # longer than a file name may be
    change = Change(target=target, shown="long.txt", data=b"x", before=None)

    with pytest.raises(PatchError) as caught:
        commit([change], root=root)

    assert str(caught.value) == (
        "Cannot read long.txt again before writing it: File name too long; nothing was written."
    )


def test_commit_reports_what_a_failed_rollback_left(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second replace fails and undoing the first fails too: the message names the leftovers."""
    new_file = root / "fresh" / "new.txt"
    real_replace, real_unlink = os.replace, os.unlink
    replaced: list[str] = []

    def full_disk(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
        replaced.append(os.fspath(target))
        if len(replaced) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(source, target)

    def read_only(path: str | os.PathLike[str], *, dir_fd: int | None = None) -> None:
        if os.fspath(path) == os.fspath(new_file):
            raise OSError(errno.EROFS, "Read-only file system")
        real_unlink(path, dir_fd=dir_fd)

    patch = envelope(
        *("*** Add File: fresh/new.txt", "+new"),
        *("*** Update File: notes.txt", "@@", "-one", "+ONE"),
    )
    with monkeypatch.context() as patched:
        patched.setattr(patch_commit.os, "replace", full_disk)
        patched.setattr(patch_commit.os, "unlink", read_only)
        with pytest.raises(PatchError) as caught:
            apply_patch(patch, root)

    assert str(caught.value) == (
        "Could not write notes.txt: No space left on device. Rolling back failed for: "
        "fresh/new.txt: Read-only file system; fresh/: Directory not empty"
    )
    assert tree(root) == {"fresh": "dir", "fresh/new.txt": "new\n", "notes.txt": "one\ntwo\n"}


def test_replay_refuses_a_file_replaced_by_a_folder(root: Path, journal: PatchJournal) -> None:
    patch = envelope("*** Update File: notes.txt", "@@", "-one", "+ONE")
    apply_patch(patch, root, journal=journal)
    (root / "notes.txt").unlink()
    (root / "notes.txt").mkdir()

    with pytest.raises(PatchError, match=r"^notes\.txt was changed by someone else after"):
        apply_patch(patch, root, journal=journal)


def test_replay_that_cannot_plan_the_rest_says_why(root: Path, journal: PatchJournal) -> None:
    """Half applied, and the half left no longer fits (here: the file limit is now smaller)."""
    patch = envelope(
        *("*** Update File: notes.txt", "@@", "-one", "+ONE"),
        *("*** Add File: new.txt", "+new"),
    )
    apply_patch(patch, root, journal=journal)
    (root / "notes.txt").write_text("one\ntwo\n")  # as if the crash came before this write

    with pytest.raises(PatchError) as caught:
        apply_patch(patch, root, journal=journal, max_file_bytes=4)

    assert str(caught.value) == (
        "An earlier attempt of this task was interrupted while applying this same patch, and "
        "the rest of it cannot be applied now: Cannot update notes.txt: it is larger than 4 "
        "bytes Read the files again and send a new patch."
    )
    assert caught.value.path == "notes.txt"


def test_replay_refuses_a_plan_that_now_changes_another_file(
    root: Path, journal: PatchJournal
) -> None:
    """An Add File that matched the file (so journaled nothing for it) now would change it."""
    patch = envelope("*** Add File: notes.txt", "+one", "+two", "*** Add File: new.txt", "+new")
    apply_patch(patch, root, journal=journal)
    (root / "new.txt").unlink()  # as if the crash came before the first write
    (root / "notes.txt").write_text("edited since\n")

    with pytest.raises(PatchError, match=r"^notes\.txt: this patch no longer has the effect"):
        apply_patch(patch, root, journal=journal)
    assert tree(root) == {"notes.txt": "edited since\n"}
