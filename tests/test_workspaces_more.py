"""Workspaces off the common path: a commit without a copy, a spare that vanished, a commit git
does not know, and a merge of a commit that was not made from the base it is merged against."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from orchestrator.errors import WorkspaceError
from orchestrator.workspaces import Workspaces

from .test_workspaces import _LINES as LINES  # pyright: ignore[reportPrivateUsage]
from .test_workspaces import _files as files  # pyright: ignore[reportPrivateUsage]
from .test_workspaces import _task as task  # pyright: ignore[reportPrivateUsage]
from .test_workspaces import _worktrees as worktrees  # pyright: ignore[reportPrivateUsage]
from .test_workspaces import _write as write  # pyright: ignore[reportPrivateUsage]


@pytest.fixture
def main(tmp_path: Path) -> Path:
    root = tmp_path / "main"
    write(root / "f.txt", LINES)
    write(root / "other.txt", "other\n")
    return root


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "run" / "ws"


async def test_commit_without_a_copy_says_to_isolate_first(main: Path, store: Path) -> None:
    ws = Workspaces(main, store)
    with pytest.raises(WorkspaceError, match="no copy for task 't9'") as info:
        await ws.commit("t9")
    assert (info.value.command, info.value.stderr) == ((), "isolate it first")


async def test_a_spare_that_vanished_is_dropped_and_a_fresh_copy_made(
    main: Path, store: Path
) -> None:
    ws = Workspaces(main, store, spares=1)
    await ws.isolate("t1")
    await ws.remove("t1")
    (spare,) = (store / "spares").iterdir()
    shutil.rmtree(spare)  # e.g. a cleaner that ran between tasks
    copy = await ws.isolate("t2")
    assert files(copy) == files(main)
    assert ws.base_of("t2") is not None
    assert f"worktree {copy}" in await worktrees(store)


async def test_merging_a_commit_git_does_not_know_fails_with_gits_message(
    main: Path, store: Path
) -> None:
    ws = Workspaces(main, store)
    _, base = await task(ws, "t1", {"f.txt": "changed\n"})
    with pytest.raises(WorkspaceError) as info:
        await ws.merge("t1", "0" * 40, base=base)
    assert str(info.value).startswith("git ") and "failed" in str(info.value)
    assert info.value.stderr
    assert (main / "f.txt").read_text() == LINES  # main is untouched


async def test_a_commit_merged_against_an_older_base_is_reparented_on_it(
    main: Path, store: Path
) -> None:
    """t2 was copied after main gained `new.txt`; merged against t1's older base, its commit is
    made again on that base, and only what t2 changed beyond main lands."""
    ws = Workspaces(main, store)
    await ws.isolate("t1")
    old_base = ws.base_of("t1")
    assert old_base is not None
    write(main / "new.txt", "main moved on\n")
    second, newer_base = await task(ws, "t2", {"f.txt": "line 1, by t2\n"})
    assert newer_base != old_base
    write(main / "other.txt", "other, edited in main\n")
    outcome = await ws.merge("t2", second, base=old_base)
    assert (outcome.merged, outcome.conflicts) == (("f.txt",), ())
    assert files(main) == {
        "f.txt": b"line 1, by t2\n",
        "new.txt": b"main moved on\n",
        "other.txt": b"other, edited in main\n",
    }
