"""apply_patch in a durable run: write-ahead records, and replays that never apply a patch twice."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.errors import PatchError
from orchestrator.llm import ToolCall
from orchestrator.models import FileChange, PatchRecord, RunId, TaskId
from orchestrator.toolkit import EffectLog, ToolContext, ToolOutput
from orchestrator.tools import patch_commit
from orchestrator.tools.apply_patch import ApplyPatchTool, PatchJournal, apply_patch
from orchestrator.tools.patch_journal import ALREADY_APPLIED

# Appends a line below its context: applied twice, it would add the line twice.
APPEND = "*** Begin Patch\n*** Update File: a.txt\n@@\n one\n+added\n*** End Patch\n"
BOTH = (
    "*** Begin Patch\n"
    "*** Update File: a.txt\n@@\n one\n+added\n"
    "*** Update File: b.txt\n@@\n-beta\n+BETA\n"
    "*** End Patch\n"
)
ADD_DELETE = (
    "*** Begin Patch\n*** Add File: new.txt\n+fresh\n*** Delete File: b.txt\n*** End Patch\n"
)
THREE = ADD_DELETE.replace(
    "*** End Patch", "*** Update File: a.txt\n@@\n one\n+added\n*** End Patch"
)
A_BEFORE, A_AFTER = "one\ntwo\n", "one\nadded\ntwo\n"
B_BEFORE, B_AFTER = "alpha\nbeta\n", "alpha\nBETA\n"


class Crash(Exception):
    """Stands for the process dying at that point."""


class MemoryLog:
    """An in-memory `EffectLog`; `on_record` runs once a record is kept (to crash, or to look)."""

    def __init__(self, on_record: Callable[[PatchRecord], None] | None = None) -> None:
        self.records: list[PatchRecord] = []
        self.on_record = on_record

    def find(self, task_id: TaskId, key: str) -> PatchRecord | None:
        for record in self.records:
            if (record.task_id, record.key) == (task_id, key):
                return record
        return None

    def record(self, record: PatchRecord) -> None:
        self.records.append(record)
        if self.on_record is not None:
            self.on_record(record)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "a.txt").write_text(A_BEFORE)
    (workspace / "b.txt").write_text(B_BEFORE)
    return workspace


def tree(root: Path) -> dict[str, str]:
    """Every file under `root` and its text, leftover temp files of a crashed commit left out."""
    return {
        path.relative_to(root).as_posix(): path.read_text()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.name.endswith(".apply_patch.tmp")
    }


def context(root: Path, effects: EffectLog | None, task: str = "t") -> ToolContext:
    return ToolContext(
        workdir=root,
        run_dir=root.parent / "run",
        run_id=RunId("r"),
        task_id=TaskId(task),
        call_id="c",
        effects=effects,
    )


async def run(patch: str, root: Path, effects: EffectLog | None, task: str = "t") -> ToolOutput:
    call = ToolCall(call_id="c", name="apply_patch", arguments=json.dumps({"patch": patch}))
    return await ApplyPatchTool()(call, context(root, effects, task))


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def test_replay_records_the_change_before_writing(root: Path) -> None:
    """The record names every file by its before and after hashes, and the disk is untouched then."""
    seen: list[dict[str, str]] = []
    log = MemoryLog(on_record=lambda _: seen.append(tree(root)))
    output = await run(THREE, root, log)
    assert not output.is_error
    assert seen == [{"a.txt": A_BEFORE, "b.txt": B_BEFORE}]
    [record] = log.records
    assert record.task_id == TaskId("t")
    assert record.key == sha(THREE)
    assert set(record.files) == {
        FileChange(path="new.txt", before_sha256=None, after_sha256=sha("fresh\n")),
        FileChange(path="b.txt", before_sha256=sha(B_BEFORE), after_sha256=None),
        FileChange(path="a.txt", before_sha256=sha(A_BEFORE), after_sha256=sha(A_AFTER)),
    }


async def test_replay_writes_nothing_when_the_record_fails(root: Path) -> None:
    """A journal that cannot record stops the call before any file is written."""

    def fail(_: PatchRecord) -> None:
        raise Crash

    with pytest.raises(Crash):
        await run(BOTH, root, MemoryLog(on_record=fail))
    assert sorted(os.listdir(root)) == ["a.txt", "b.txt"]  # no temp file either
    assert tree(root) == {"a.txt": A_BEFORE, "b.txt": B_BEFORE}


async def test_replay_after_a_full_apply_writes_nothing_and_says_so(root: Path) -> None:
    log = MemoryLog()
    first = await run(BOTH, root, log)
    stamps = [os.stat(root / name).st_mtime_ns for name in ("a.txt", "b.txt")]
    again = await run(BOTH, root, log)
    assert not again.is_error
    assert again.native == {"status": "completed"}
    assert again.content == f"{first.content}\nNote: {ALREADY_APPLIED}"
    assert "already applied by an earlier attempt of this task" in again.content
    assert tree(root) == {"a.txt": A_AFTER, "b.txt": B_AFTER}
    assert [os.stat(root / name).st_mtime_ns for name in ("a.txt", "b.txt")] == stamps
    assert len(log.records) == 1


def test_replay_report_is_marked_already_applied(root: Path) -> None:
    journal = PatchJournal(effects=MemoryLog(), task_id=TaskId("t"))
    assert apply_patch(APPEND, root, journal=journal).replay is None
    report = apply_patch(APPEND, root, journal=journal)
    assert report.replay == "already_applied"
    assert report.modified == ("a.txt",)
    assert (root / "a.txt").read_text() == A_AFTER


async def test_replay_after_a_crash_before_the_writes_applies_once(root: Path) -> None:
    def crash(_: PatchRecord) -> None:
        raise Crash

    log = MemoryLog(on_record=crash)
    with pytest.raises(Crash):
        await run(BOTH, root, log)
    log.on_record = None
    output = await run(BOTH, root, log)
    assert output.content == "Success. Updated the following files:\nM a.txt\nM b.txt"
    assert tree(root) == {"a.txt": A_AFTER, "b.txt": B_AFTER}
    assert len(log.records) == 1  # not recorded a second time


async def test_replay_completes_a_commit_cut_short(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process died after the first file was replaced: the rerun writes only the second."""
    real_replace = os.replace
    calls: list[str] = []

    def dying_replace(source: str | Path, target: str | Path) -> None:
        calls.append(str(target))
        if len(calls) == 2:
            raise Crash
        real_replace(source, target)

    log = MemoryLog()
    with monkeypatch.context() as patched:
        patched.setattr(patch_commit.os, "replace", dying_replace)
        with pytest.raises(Crash):
            await run(BOTH, root, log)
    assert tree(root) == {"a.txt": A_AFTER, "b.txt": B_BEFORE}
    a_stamp = os.stat(root / "a.txt").st_mtime_ns
    output = await run(BOTH, root, log)
    assert not output.is_error
    assert output.content.startswith("Success. Updated the following files:\nM a.txt\nM b.txt\n")
    assert "interrupted while applying this patch" in output.content
    assert tree(root) == {"a.txt": A_AFTER, "b.txt": B_AFTER}
    assert os.stat(root / "a.txt").st_mtime_ns == a_stamp  # not written again
    assert len(log.records) == 1


@pytest.mark.parametrize("left", ["b.txt", "new.txt"], ids=["delete-left", "add-left"])
def test_replay_completes_add_and_delete(root: Path, left: str) -> None:
    """Either half of an add + delete patch left undone is finished; the other half is kept."""
    journal = PatchJournal(effects=MemoryLog(), task_id=TaskId("t"))
    apply_patch(ADD_DELETE, root, journal=journal)
    if left == "b.txt":
        (root / "b.txt").write_text(B_BEFORE)  # the crash came before the delete
    else:
        (root / "new.txt").unlink()  # the crash came before the add
    report = apply_patch(ADD_DELETE, root, journal=journal)
    assert report.replay == "completed"
    assert (report.added, report.deleted) == (("new.txt",), ("b.txt",))
    assert report.notes[-1].endswith(f"touching only the files it had not reached: {left}.")
    assert tree(root) == {"a.txt": A_BEFORE, "new.txt": "fresh\n"}


def test_replay_after_add_and_delete_is_a_no_op(root: Path) -> None:
    journal = PatchJournal(effects=MemoryLog(), task_id=TaskId("t"))
    apply_patch(ADD_DELETE, root, journal=journal)
    report = apply_patch(ADD_DELETE, root, journal=journal)
    assert report.replay == "already_applied"
    assert report.summary == (
        f"Success. Updated the following files:\nA new.txt\nD b.txt\nNote: {ALREADY_APPLIED}"
    )
    assert tree(root) == {"a.txt": A_BEFORE, "new.txt": "fresh\n"}


async def test_replay_is_per_task(root: Path) -> None:
    """Another task sending the same patch is a new change, not a replay."""
    log = MemoryLog()
    await run(APPEND, root, log, task="t1")
    output = await run(APPEND, root, log, task="t2")
    assert output.content == "Success. Updated the following files:\nM a.txt"
    assert (root / "a.txt").read_text() == "one\nadded\nadded\ntwo\n"
    assert [record.task_id for record in log.records] == [TaskId("t1"), TaskId("t2")]


async def test_replay_refuses_a_file_changed_by_someone_else(root: Path) -> None:
    log = MemoryLog()
    await run(BOTH, root, log)
    (root / "a.txt").write_text(A_BEFORE)  # restored, so a replay would write b.txt ...
    (root / "b.txt").write_text("alpha\nedited elsewhere\n")  # ... but b.txt was edited
    output = await run(BOTH, root, log)
    assert output.is_error
    assert output.native == {"status": "failed"}
    assert output.content.startswith("b.txt was changed by someone else")
    assert "nothing was written" in output.content
    assert tree(root) == {"a.txt": A_BEFORE, "b.txt": "alpha\nedited elsewhere\n"}


def test_replay_error_names_the_changed_file(root: Path) -> None:
    journal = PatchJournal(effects=MemoryLog(), task_id=TaskId("t"))
    apply_patch(BOTH, root, journal=journal)
    (root / "b.txt").unlink()
    with pytest.raises(PatchError, match=r"^b\.txt was changed by someone else") as caught:
        apply_patch(BOTH, root, journal=journal)
    assert caught.value.path == "b.txt"
    assert tree(root) == {"a.txt": A_AFTER}


async def test_replay_native_operation_is_applied_once(root: Path) -> None:
    log = MemoryLog()
    operation = {"type": "update_file", "path": "a.txt", "diff": "@@\n one\n+added\n"}
    call = ToolCall(
        call_id="c", name="apply_patch", arguments=json.dumps(operation), kind="apply_patch"
    )
    first = await ApplyPatchTool()(call, context(root, log))
    again = await ApplyPatchTool()(call, context(root, log))
    assert (first.is_error, again.is_error) == (False, False)
    assert ALREADY_APPLIED in again.content
    assert (root / "a.txt").read_text() == A_AFTER
    assert len(log.records) == 1


async def test_replay_is_off_without_effects(root: Path) -> None:
    """No journal: the call behaves as it always did, so the same patch applies twice."""
    first = await run(APPEND, root, None)
    again = await run(APPEND, root, None)
    assert first.content == again.content == "Success. Updated the following files:\nM a.txt"
    assert (root / "a.txt").read_text() == "one\nadded\nadded\ntwo\n"
