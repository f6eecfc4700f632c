"""No lost update: concurrent patches on one workspace, from threads and processes, and a third
party writing between a patch's planning and its commit."""

from __future__ import annotations

import fcntl
import importlib
import json
import multiprocessing
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import pytest

from orchestrator.errors import PatchError
from orchestrator.tools import patch_lock
from orchestrator.tools.apply_patch import apply_patch
from orchestrator.tools.patch_commit import Change, commit, snapshot
from orchestrator.tools.patch_lock import lock_path, workspace_lock

ORIGINAL = "a\nb\nc\n"
ADDED = ("zero", "one")
"""The line each of the two writers adds: after `a`, and after `b`."""


class _Barrier(Protocol):
    def wait(self, timeout: float | None = None) -> int: ...


def envelope(*lines: str) -> str:
    return "\n".join(["*** Begin Patch", *lines, "*** End Patch"]) + "\n"


def _writer_patch(name: str, writer: int) -> str:
    """Writer 0 adds a line between `a` and `b`, writer 1 between `b` and `c`, with context."""
    before, after = ("a", "b") if writer == 0 else ("b", "c")
    return envelope(
        f"*** Update File: {name}", "@@", f" {before}", f"+{ADDED[writer]}", f" {after}"
    )


def _seed(root: Path, rounds: int) -> None:
    for number in range(rounds):
        (root / f"f{number}.txt").write_text(ORIGINAL)


def _race(root: Path, writer: int, rounds: int, barrier: _Barrier) -> list[str]:
    """Per round: wait for the other writer, then patch that round's file; "ok" or the error."""
    outcomes: list[str] = []
    for number in range(rounds):
        barrier.wait(timeout=10)
        try:
            apply_patch(_writer_patch(f"f{number}.txt", writer), root)
        except PatchError as exc:
            outcomes.append(f"error {exc.path}: {exc}")
        else:
            outcomes.append("ok")
    return outcomes


def _lost_edits(root: Path, outcomes: Sequence[Sequence[str]]) -> list[str]:
    """Every round where a writer reported success but its line is missing, or an error that is
    not a conflict on that round's file, or a failed writer whose line is there anyway."""
    problems: list[str] = []
    for number in range(len(outcomes[0])):
        name = f"f{number}.txt"
        lines = (root / name).read_text().splitlines()
        for writer, results in enumerate(outcomes):
            outcome, present = results[number], ADDED[writer] in lines
            if outcome == "ok" and not present:
                problems.append(f"round {number}: writer {writer} succeeded, its line is lost")
            elif outcome != "ok" and (present or not outcome.startswith(f"error {name}:")):
                problems.append(f"round {number}: writer {writer}: {outcome} ({lines})")
    return problems


def test_apply_patch_two_threads_lose_no_edit(tmp_path: Path) -> None:
    """100 rounds of two threads patching one file at the same moment: both lines land."""
    rounds = 100
    _seed(tmp_path, rounds)
    barrier = threading.Barrier(2)
    outcomes: list[list[str]] = [[], []]

    def run(writer: int) -> None:
        outcomes[writer] = _race(tmp_path, writer, rounds, barrier)

    threads = [threading.Thread(target=run, args=(writer,)) for writer in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert [len(results) for results in outcomes] == [rounds, rounds]
    assert _lost_edits(tmp_path, outcomes) == []
    # The lock covers the planning read too, so the later patch is matched against the earlier
    # one's result: no conflict, both edits kept.
    assert outcomes == [["ok"] * rounds] * 2
    assert {(tmp_path / f"f{n}.txt").read_text() for n in range(rounds)} == {"a\nzero\nb\none\nc\n"}


def _process_writer(root: str, writer: int, rounds: int, barrier: _Barrier, out: str) -> None:
    outcomes = _race(Path(root), writer, rounds, barrier)
    Path(out).write_text(json.dumps(outcomes))


@pytest.mark.timeout(30)  # starts Python interpreters: slow on a busy machine
def test_apply_patch_two_processes_lose_no_edit(tmp_path: Path) -> None:
    """30 rounds of two processes patching one file at the same moment: both lines land."""
    rounds = 30
    root = tmp_path / "ws"
    root.mkdir()
    _seed(root, rounds)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    outs = [tmp_path / f"writer{writer}.json" for writer in (0, 1)]
    processes = [
        context.Process(
            target=_process_writer, args=(str(root), writer, rounds, barrier, str(outs[writer]))
        )
        for writer in (0, 1)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=30)
    assert [process.exitcode for process in processes] == [0, 0]
    outcomes: list[list[str]] = [json.loads(out.read_text()) for out in outs]
    assert _lost_edits(root, outcomes) == []
    assert outcomes == [["ok"] * rounds] * 2


@pytest.fixture
def root(tmp_path: Path) -> Path:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "notes.txt").write_text("one\ntwo\n")
    return workspace


def _write_before_commit(
    monkeypatch: pytest.MonkeyPatch, write: Callable[[], object]
) -> list[Sequence[Change]]:
    """Make `write` run after the patch was planned and before its commit; record the commits."""
    seen: list[Sequence[Change]] = []

    def racing_commit(
        changes: Sequence[Change], *, root: Path, before_write: Callable[[], None] | None = None
    ) -> None:
        seen.append(changes)
        write()
        commit(changes, root=root, before_write=before_write)

    # The package re-exports the `apply_patch` function under the module's name.
    module = importlib.import_module("orchestrator.tools.apply_patch")
    monkeypatch.setattr(module, "commit", racing_commit)
    return seen


def test_apply_patch_refuses_a_file_written_between_planning_and_commit(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = root / "notes.txt"
    seen = _write_before_commit(monkeypatch, lambda: target.write_text("one\ntwo\nthree\n"))
    with pytest.raises(PatchError, match=r"notes\.txt changed while the patch") as caught:
        apply_patch(envelope("*** Update File: notes.txt", "@@", "-one", "+ONE"), root)
    assert caught.value.path == "notes.txt"
    assert len(seen) == 1
    assert target.read_text() == "one\ntwo\nthree\n"
    assert sorted(path.name for path in root.iterdir()) == ["notes.txt"]


def test_apply_patch_refuses_a_same_size_write_that_kept_the_mtime(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check compares contents: (size, mtime) can stay the same within a timestamp tick."""
    target = root / "notes.txt"
    info = os.stat(target)

    def write() -> None:
        target.write_text("owe\ntwo\n")
        os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))

    _write_before_commit(monkeypatch, write)
    with pytest.raises(PatchError, match="changed while the patch"):
        apply_patch(envelope("*** Update File: notes.txt", "@@", " one", "-two", "+TWO"), root)
    assert target.read_text() == "owe\ntwo\n"


def test_apply_patch_refuses_a_file_created_between_planning_and_commit(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = root / "new.txt"
    _write_before_commit(monkeypatch, lambda: target.write_text("theirs\n"))
    with pytest.raises(PatchError, match=r"new\.txt changed while the patch"):
        apply_patch(envelope("*** Add File: new.txt", "+mine"), root)
    assert target.read_text() == "theirs\n"


def test_commit_skips_the_journal_hook_when_a_file_changed(root: Path) -> None:
    """The write-ahead record is not written for a patch the race check refused."""
    target = root / "notes.txt"
    before = snapshot(target)
    target.write_text("one\nTWO\n")
    recorded: list[str] = []
    change = Change(target=target, shown="notes.txt", data=b"patched\n", before=before)
    with pytest.raises(PatchError, match="changed while the patch"):
        commit([change], root=root, before_write=lambda: recorded.append("record"))
    assert recorded == []
    assert target.read_text() == "one\nTWO\n"


def test_workspace_lock_file_is_outside_the_workspace_and_keyed_by_real_path(
    root: Path, tmp_path: Path
) -> None:
    link = tmp_path / "link"
    link.symlink_to(root)
    assert lock_path(link) == lock_path(root)
    assert not lock_path(root).is_relative_to(root)
    apply_patch(envelope("*** Update File: notes.txt", "@@", "-one", "+ONE"), link)
    assert sorted(path.name for path in root.iterdir()) == ["notes.txt"]
    assert not lock_path(root).exists()  # removed by its last holder: no pile of lock files


def test_workspace_lock_reopens_a_lock_file_its_holder_removed(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A waiter that locked the inode its holder just removed locks the new lock file instead."""
    path = lock_path(root)
    holder = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX)  # another open file description: a second holder
    opened: list[int] = []
    waiting = threading.Event()
    real_open = patch_lock._open  # pyright: ignore[reportPrivateUsage]

    def recording_open(target: Path) -> int:
        fd = real_open(target)
        opened.append(os.fstat(fd).st_ino)
        waiting.set()
        return fd

    monkeypatch.setattr(patch_lock, "_open", recording_open)
    held: list[int] = []

    def waiter() -> None:
        with workspace_lock(root, timeout_s=5):
            held.append(os.lstat(path).st_ino)

    thread = threading.Thread(target=waiter)
    thread.start()
    assert waiting.wait(timeout=5)
    old = os.fstat(holder).st_ino
    path.unlink()
    os.close(holder)
    thread.join(timeout=5)
    assert len(opened) == 2
    assert opened[0] == old
    assert held == [opened[1]]
    assert not path.exists()


def test_workspace_lock_excludes_another_thread(root: Path) -> None:
    errors: list[PatchError] = []

    def try_lock() -> None:
        try:
            with workspace_lock(root, timeout_s=0.05):
                pass
        except PatchError as exc:
            errors.append(exc)

    with workspace_lock(root):
        thread = threading.Thread(target=try_lock)
        thread.start()
        thread.join(timeout=5)
    assert [str(error) for error in errors] == [
        "Another patch on this workspace has held its lock for over 0.05 s; nothing was "
        "written. Retry the patch."
    ]
    with workspace_lock(root, timeout_s=0.05):
        pass  # released by its holder


@pytest.mark.timeout(30)  # starts Python interpreters: slow on a busy machine
def test_workspace_lock_excludes_another_process(root: Path) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from orchestrator.errors import PatchError\n"
        "from orchestrator.tools.patch_lock import workspace_lock\n"
        "try:\n"
        "    with workspace_lock(Path(sys.argv[1]), timeout_s=0.1):\n"
        "        pass\n"
        "except PatchError:\n"
        "    print('busy')\n"
    )

    def other_process() -> str:
        done = subprocess.run(
            [sys.executable, "-c", code, str(root)],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        return done.stdout.strip()

    with workspace_lock(root):
        assert other_process() == "busy"


def test_workspace_lock_is_released_after_a_failed_patch(root: Path) -> None:
    with pytest.raises(PatchError):
        apply_patch(envelope("*** Update File: notes.txt", "@@", "-absent", "+x"), root)
    with workspace_lock(root, timeout_s=0.05):
        pass
