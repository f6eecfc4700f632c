"""Per-task workspace copies and three-way merges, on real git and real folders."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import anyio
import pytest

from bench import isolation
from orchestrator.workspaces import Conflict, Workspaces

_LINES = "".join(f"line {i}\n" for i in range(1, 21))


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return env | {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"}


async def _git(cwd: Path, *args: str) -> str:
    command = ("git", "-c", "user.name=u", "-c", "user.email=u@example.com", *args)
    done = await anyio.run_process(command, cwd=cwd, env=_env(), check=True)
    return done.stdout.decode()


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _files(root: Path) -> dict[str, bytes]:
    """Every file under `root` (relative path → bytes), without looking at any `.git`."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def _digest(root: Path) -> str:
    """A hash of every path and byte under `root` (for a `.git` that must not change at all)."""
    sha = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        sha.update(path.relative_to(root).as_posix().encode())
        if path.is_file():
            sha.update(path.read_bytes())
    return sha.hexdigest()


async def _worktrees(store: Path) -> list[str]:
    out = await _git(store, "--git-dir=git", "worktree", "list", "--porcelain")
    return [line for line in out.splitlines() if line.startswith("worktree ")]


@pytest.fixture
def main(tmp_path: Path) -> Path:
    root = tmp_path / "main"
    _write(root / "f.txt", _LINES)
    _write(root / "other.txt", "other\n")
    _write(root / "pkg" / "mod.py", "x = 1\n")
    return root


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "run" / "ws"


async def _task(ws: Workspaces, task_id: str, edits: dict[str, str | None]) -> tuple[str, str]:
    """Isolate, apply `edits` (None deletes), commit: (commit, base)."""
    copy = await ws.isolate(task_id)
    for rel, text in edits.items():
        if text is None:
            (copy / rel).unlink()
        else:
            _write(copy / rel, text)
    base = ws.base_of(task_id)
    assert base is not None
    return await ws.commit(task_id), base


async def test_workspaces_plain_folder_round_trip(main: Path, store: Path) -> None:
    """A folder that is no git repo gets a copy whose edit lands in main on merge."""
    ws = Workspaces(main, store)
    commit, base = await _task(ws, "t1", {"other.txt": "changed\n"})
    outcome = await ws.merge("t1", commit, base=base)
    assert outcome.merged == ("other.txt",)
    assert outcome.conflicts == ()
    assert (main / "other.txt").read_text() == "changed\n"
    assert not (main / ".git").exists()
    await ws.close()


async def test_workspaces_leave_user_repo_untouched(main: Path, tmp_path: Path) -> None:
    """The user's .git (HEAD, branch, index, log, objects) is byte-identical after a full cycle."""
    await _git(main, "init", "-q", "-b", "trunk")
    await _git(main, "add", "-A")
    await _git(main, "commit", "-q", "-m", "first")
    _write(main / "other.txt", "uncommitted\n")
    _write(main / "staged.txt", "staged\n")
    await _git(main, "add", "staged.txt")
    before = _digest(main / ".git")
    ws = Workspaces(main, main / ".orchestrator" / "r1" / "ws")
    commit, base = await _task(ws, "t1", {"pkg/mod.py": "x = 2\n"})
    await ws.merge("t1", commit, base=base)
    await ws.close()
    assert _digest(main / ".git") == before
    assert (main / "pkg" / "mod.py").read_text() == "x = 2\n"
    assert sorted((await _git(main, "status", "--porcelain")).splitlines()) == [
        " M other.txt",
        " M pkg/mod.py",
        "?? .orchestrator/",
        "A  staged.txt",
    ]


async def test_workspaces_ignore_inherited_git_dir(
    main: Path, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIT_DIR / GIT_WORK_TREE / GIT_INDEX_FILE in our environment do not reach our git calls."""
    await _git(main, "init", "-q")
    before = _digest(main / ".git")
    monkeypatch.setenv("GIT_DIR", str(main / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(main))
    monkeypatch.setenv("GIT_INDEX_FILE", str(main / ".git" / "index"))
    ws = Workspaces(main, store)
    commit, base = await _task(ws, "t1", {"other.txt": "changed\n"})
    await ws.merge("t1", commit, base=base)
    await ws.close()
    assert _digest(main / ".git") == before
    assert (main / "other.txt").read_text() == "changed\n"


async def test_merge_disjoint_edits_to_one_file_are_clean(main: Path, store: Path) -> None:
    ws = Workspaces(main, store)
    a = await _task(ws, "a", {"f.txt": _LINES.replace("line 2\n", "line 2 by a\n")})
    b = await _task(ws, "b", {"f.txt": _LINES.replace("line 18\n", "line 18 by b\n")})
    first = await ws.merge("a", a[0], base=a[1])
    second = await ws.merge("b", b[0], base=b[1])
    assert (first.merged, second.merged) == (("f.txt",), ("f.txt",))
    assert second.conflicts == ()
    expected = _LINES.replace("line 2\n", "line 2 by a\n").replace("line 18\n", "line 18 by b\n")
    assert (main / "f.txt").read_text() == expected


async def test_merge_overlapping_edits_report_a_conflict(main: Path, store: Path) -> None:
    """The conflicted file keeps main's text; the task's other files are merged."""
    ws = Workspaces(main, store)
    ours = _LINES.replace("line 2\n", "line 2 by a\n")
    theirs = _LINES.replace("line 2\n", "line 2 by b\n")
    a = await _task(ws, "a", {"f.txt": ours})
    b = await _task(ws, "b", {"f.txt": theirs, "other.txt": "other by b\n"})
    await ws.merge("a", a[0], base=a[1])
    outcome = await ws.merge("b", b[0], base=b[1])
    assert outcome.conflicts == (Conflict(path="f.txt", base=_LINES, ours=ours, theirs=theirs),)
    assert outcome.merged == ("other.txt",)
    assert (main / "f.txt").read_text() == ours
    assert (main / "other.txt").read_text() == "other by b\n"


async def test_merge_conflict_with_a_deletion_has_no_theirs(main: Path, store: Path) -> None:
    ws = Workspaces(main, store)
    commit, base = await _task(ws, "t1", {"other.txt": None})
    _write(main / "other.txt", "edited in main\n")
    outcome = await ws.merge("t1", commit, base=base)
    assert outcome.conflicts == (
        Conflict(path="other.txt", base="other\n", ours="edited in main\n", theirs=None),
    )
    assert (main / "other.txt").read_text() == "edited in main\n"


async def test_merge_adds_and_deletes_files(main: Path, store: Path) -> None:
    """New files (in new dirs) appear; deleted ones go, and so does the dir they emptied."""
    ws = Workspaces(main, store)
    commit, base = await _task(ws, "t1", {"new/deep/n.txt": "new\n", "pkg/mod.py": None})
    outcome = await ws.merge("t1", commit, base=base)
    assert sorted(outcome.merged) == ["new/deep/n.txt", "pkg/mod.py"]
    assert (main / "new" / "deep" / "n.txt").read_text() == "new\n"
    assert not (main / "pkg").exists()


async def test_merge_keeps_binary_bytes(main: Path, store: Path) -> None:
    blob = bytes(range(256)) * 8 + b"\r\n\x00\r"
    (main / "img.bin").write_bytes(blob[::-1])
    ws = Workspaces(main, store)
    copy = await ws.isolate("t1")
    assert (copy / "img.bin").read_bytes() == blob[::-1]
    (copy / "img.bin").write_bytes(blob)
    outcome = await ws.merge("t1", await ws.commit("t1"), base=ws.base_of("t1") or "")
    assert outcome.merged == ("img.bin",)
    assert (main / "img.bin").read_bytes() == blob


async def test_merge_keeps_the_executable_bit(main: Path, store: Path) -> None:
    ws = Workspaces(main, store)
    copy = await ws.isolate("t1")
    script = _write(copy / "run.sh", "#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    (copy / "other.txt").chmod(0o755)
    outcome = await ws.merge("t1", await ws.commit("t1"), base=ws.base_of("t1") or "")
    assert sorted(outcome.merged) == ["other.txt", "run.sh"]
    assert (main / "run.sh").stat().st_mode & stat.S_IXUSR
    assert (main / "other.txt").stat().st_mode & stat.S_IXUSR


async def test_copy_edits_never_reach_main_before_merge(main: Path, store: Path) -> None:
    before = _files(main)
    ws = Workspaces(main, store)
    copy = await ws.isolate("t1")
    assert (copy / "f.txt").stat().st_ino != (main / "f.txt").stat().st_ino
    _write(copy / "f.txt", "rewritten\n")
    (copy / "other.txt").unlink()
    _write(copy / "added.txt", "added\n")
    await ws.commit("t1")
    assert _files(main) == before


async def test_commit_is_idempotent(main: Path, store: Path) -> None:
    ws = Workspaces(main, store)
    commit, _ = await _task(ws, "t1", {"other.txt": "changed\n"})
    assert await ws.commit("t1") == commit


async def test_merge_twice_changes_nothing_the_second_time(main: Path, store: Path) -> None:
    ws = Workspaces(main, store)
    commit, base = await _task(ws, "t1", {"other.txt": "changed\n", "pkg/mod.py": None})
    await ws.merge("t1", commit, base=base)
    _write(main / "f.txt", "main moved on\n")
    again = await ws.merge("t1", commit, base=base)
    assert (again.merged, again.conflicts) == ((), ())
    assert (main / "f.txt").read_text() == "main moved on\n"


async def test_merge_keeps_main_edits_made_after_isolation(main: Path, store: Path) -> None:
    ws = Workspaces(main, store)
    commit, base = await _task(ws, "t1", {"other.txt": "by task\n"})
    _write(main / "f.txt", "by user\n")
    _write(main / "user.txt", "new by user\n")
    outcome = await ws.merge("t1", commit, base=base)
    assert outcome.merged == ("other.txt",)
    assert (main / "f.txt").read_text() == "by user\n"
    assert (main / "user.txt").read_text() == "new by user\n"


async def test_isolate_after_a_merge_sees_the_merged_content(main: Path, store: Path) -> None:
    ws = Workspaces(main, store)
    commit, base = await _task(ws, "t1", {"other.txt": "merged\n"})
    await ws.merge("t1", commit, base=base)
    copy = await ws.isolate("t2")
    assert (copy / "other.txt").read_text() == "merged\n"
    assert ws.base_of("t2") != base


async def test_isolate_again_discards_the_older_copy(main: Path, store: Path) -> None:
    ws = Workspaces(main, store)
    copy = await ws.isolate("t1")
    _write(copy / "scratch.txt", "attempt 1\n")
    assert await ws.isolate("t1") == copy
    assert not (copy / "scratch.txt").exists()
    assert len(await _worktrees(store)) == 2  # the bare store and this one copy


async def test_remove_without_spares_leaves_no_worktree_and_no_dir(main: Path, store: Path) -> None:
    ws = Workspaces(main, store, spares=0)
    copy = await ws.isolate("t1")
    await ws.remove("t1")
    assert not copy.exists()
    assert ws.base_of("t1") is None
    assert await _worktrees(store) == [f"worktree {store / 'git'}"]
    assert list((store / "git" / "worktrees").iterdir()) == []


async def test_remove_parks_at_most_spares_copies(main: Path, store: Path) -> None:
    """Removed copies leave their task's path; `spares` of them wait for reuse, the rest go."""
    ws = Workspaces(main, store, spares=2)
    copies = [await ws.isolate(f"t{i}") for i in range(3)]
    for i in range(3):
        await ws.remove(f"t{i}")
    assert not any(copy.exists() for copy in copies)
    assert sorted(p.name for p in (store / "spares").iterdir()) == ["t0", "t1"]
    assert sorted(await _worktrees(store)) == [
        f"worktree {store / 'git'}",
        f"worktree {store / 'spares' / 't0'}",
        f"worktree {store / 'spares' / 't1'}",
    ]


async def test_remove_deletes_a_copy_whose_git_link_a_task_broke(main: Path, store: Path) -> None:
    ws = Workspaces(main, store)
    copy = await ws.isolate("t1")
    (copy / ".git").unlink()
    await ws.remove("t1")
    assert not copy.exists()
    assert not (store / "spares").exists()


def _tree(root: Path) -> dict[str, tuple[bytes | None, bool]]:
    """Every file and dir under `root` but `.git`: bytes (None for a dir) and the executable bit."""
    return {
        p.relative_to(root).as_posix(): (
            None if p.is_dir() else p.read_bytes(),
            bool(p.stat().st_mode & stat.S_IXUSR),
        )
        for p in sorted(root.rglob("*"))
        if ".git" not in p.relative_to(root).parts
    }


async def test_a_recycled_copy_equals_a_fresh_one(main: Path, store: Path) -> None:
    """Whatever the last task did to a spare, the next copy holds exactly main's files."""
    ws = Workspaces(main, store, spares=1)
    copy = await ws.isolate("t1")
    _write(copy / "f.txt", "edited\n")
    (copy / "other.txt").unlink()
    _write(copy / ".venv" / "lib.py", "ignored or not, it goes\n")
    (copy / "pkg" / "mod.py").chmod(0o755)
    (copy / "pkg" / "empty").mkdir()
    await _git(copy / "pkg", "init", "-q", "nested")
    await _git(copy / "pkg" / "nested", "commit", "-q", "--allow-empty", "-m", "nested")
    _write(copy / "pkg" / "nested" / "n.txt", "nested\n")
    await ws.commit("t1")
    _write(copy / "f.txt", "edited again, after the commit\n")
    (copy / "pkg" / "mod.py").unlink()
    await ws.remove("t1")
    _write(main / "user.txt", "main moved on\n")
    again = await ws.isolate("t2")
    assert not (store / "spares" / "t1").exists()  # recycled, not made anew
    assert _tree(again) == _tree(main)
    commit, base = await ws.commit("t2"), ws.base_of("t2")
    trees = await _git(
        store, "--git-dir=git", "rev-parse", f"{commit}^{{tree}}", f"{base}^{{tree}}"
    )
    assert len(set(trees.split())) == 1  # its index matches too: nothing to commit


async def test_close_removes_every_copy(main: Path, store: Path) -> None:
    ws = Workspaces(main, store)
    for task_id in ("a", "b", "c"):
        await ws.isolate(task_id)
    await ws.close()
    assert list((store / "tasks").iterdir()) == []
    assert await _worktrees(store) == [f"worktree {store / 'git'}"]


async def test_close_before_any_copy_creates_nothing(main: Path, store: Path) -> None:
    await Workspaces(main, store).close()
    assert not store.exists()


async def test_gc_removes_a_crashed_runs_copies(main: Path, store: Path) -> None:
    crashed = Workspaces(main, store)
    await crashed.isolate("a")
    await crashed.isolate("b")
    assert await Workspaces.gc(store) == 2
    assert list((store / "tasks").iterdir()) == []
    assert await _worktrees(store) == [f"worktree {store / 'git'}"]
    assert await Workspaces.gc(store) == 0


async def test_copies_leave_out_ignored_and_hidden_paths(main: Path, tmp_path: Path) -> None:
    """.gitignore'd files, the user's .git, .orchestrator/ and hidden paths are not copied."""
    await _git(main, "init", "-q")
    _write(main / ".gitignore", ".venv/\n*.log\n")
    _write(main / ".venv" / "lib" / "site.py", "big\n")
    _write(main / "debug.log", "noise\n")
    _write(main / ".orchestrator" / "runs" / "r0" / "journal", "{}\n")
    _write(main / "runs" / "r1" / "journal", "{}\n")
    ws = Workspaces(main, main / "runs" / "r1" / "ws", hidden=(main / "runs" / "r1",))
    copy = await ws.isolate("t1")
    assert set(_files(copy)) == {".gitignore", "f.txt", "other.txt", "pkg/mod.py"}
    assert (copy / ".git").is_file()  # points into the private store, not at the user's repo
    assert str(main / ".git") not in (copy / ".git").read_text()


async def test_unsafe_task_ids_stay_inside_the_store(main: Path, store: Path) -> None:
    ws = Workspaces(main, store)
    copy = await ws.isolate("../../escape me")
    assert copy.parent == store.resolve() / "tasks"
    assert (copy / "f.txt").is_file()


async def test_eight_tasks_isolate_concurrently_then_merge_in_order(
    main: Path, store: Path
) -> None:
    ws = Workspaces(main, store)
    copies: dict[int, Path] = {}

    async def isolate(i: int) -> None:
        copies[i] = await ws.isolate(f"t{i}")

    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(isolate, i)
    for i, copy in copies.items():
        _write(copy / f"t{i}.txt", f"task {i}\n")
        _write(copy / "f.txt", _LINES.replace(f"line {2 * i + 1}\n", f"line {2 * i + 1} by {i}\n"))
    for i in range(8):
        outcome = await ws.merge(f"t{i}", await ws.commit(f"t{i}"), base=ws.base_of(f"t{i}") or "")
        assert outcome.conflicts == ()
        assert sorted(outcome.merged) == ["f.txt", f"t{i}.txt"]
    expected = _LINES
    for i in range(8):
        expected = expected.replace(f"line {2 * i + 1}\n", f"line {2 * i + 1} by {i}\n")
    assert (main / "f.txt").read_text() == expected
    assert all((main / f"t{i}.txt").read_text() == f"task {i}\n" for i in range(8))
    await ws.close()


async def test_merge_takes_a_commit_made_before_a_restart(main: Path, store: Path) -> None:
    """A new Workspaces on the same store (a resumed run) merges an earlier instance's commit."""
    before = Workspaces(main, store)
    commit, base = await _task(before, "t1", {"f.txt": _LINES.replace("line 3\n", "line 3 t1\n")})
    _write(main / "f.txt", _LINES.replace("line 19\n", "line 19 user\n"))
    outcome = await Workspaces(main, store).merge("t1", commit, base=base)
    assert (outcome.merged, outcome.conflicts) == (("f.txt",), ())
    both = _LINES.replace("line 3\n", "line 3 t1\n").replace("line 19\n", "line 19 user\n")
    assert (main / "f.txt").read_text() == both


async def test_merge_file_against_directory_is_a_conflict_that_keeps_main(
    main: Path, store: Path
) -> None:
    """Main adds a file where the task adds a directory: neither side's files are written."""
    ws = Workspaces(main, store)
    commit, base = await _task(ws, "t1", {"d/x.txt": "task\n", "other.txt": "by task\n"})
    _write(main / "d", "main file\n")
    outcome = await ws.merge("t1", commit, base=base)
    assert outcome.conflicts == (Conflict(path="d", base=None, ours="main file\n", theirs=None),)
    assert outcome.merged == ("other.txt",)
    assert (main / "d").read_text() == "main file\n"


async def test_merge_carries_main_edits_into_a_file_the_task_renamed(
    main: Path, store: Path
) -> None:
    ws = Workspaces(main, store)
    copy = await ws.isolate("t1")
    (copy / "f.txt").rename(copy / "g.txt")
    commit = await ws.commit("t1")
    _write(main / "f.txt", _LINES.replace("line 20\n", "line 20 user\n"))
    outcome = await ws.merge("t1", commit, base=ws.base_of("t1") or "")
    assert (sorted(outcome.merged), outcome.conflicts) == (["f.txt", "g.txt"], ())
    assert not (main / "f.txt").exists()
    assert (main / "g.txt").read_text() == _LINES.replace("line 20\n", "line 20 user\n")


async def test_merge_takes_paths_literally(main: Path, store: Path) -> None:
    """Spaces, glob characters, pathspec magic, a leading dash and non-ASCII names."""
    names = ["a b.txt", "*.txt", ":(glob)x", "-rf", "é.txt"]
    ws = Workspaces(main, store)
    commit, base = await _task(ws, "t1", {name: f"{name}\n" for name in names})
    _write(main / "other.txt", "main moved\n")  # the three-way path
    outcome = await ws.merge("t1", commit, base=base)
    assert sorted(outcome.merged) == sorted(names)
    assert all((main / name).read_text() == f"{name}\n" for name in names)


def test_isolation_bench_runs_on_a_tiny_repo(tmp_path: Path) -> None:
    """The bench's own checks (every merge clean, two paths each) hold; no timing asserts."""
    out = tmp_path / "isolation.md"
    isolation.main(["--files", "30", "--tasks", "3", "--out", str(out)])
    assert "| **total** |" in out.read_text()


ROUNDS, WIDTH = 5, 12


@pytest.mark.timeout(60)
async def test_copies_made_and_removed_at_once_never_trip_over_each_other(tmp_path: Path) -> None:
    """`git worktree add` reads every other copy's git dir; a concurrent add or removal used to
    fail it with `failed to read .../commondir` (about one run in three of this test)."""
    main = tmp_path / "main"
    for i in range(20):
        _write(main / f"pkg{i}" / "mod.py", _LINES)
    ws = Workspaces(main, tmp_path / "store", spares=0)

    async def churn(n: int) -> None:
        for _ in range(ROUNDS):
            copy = await ws.isolate(f"t{n}")
            assert (copy / "pkg7" / "mod.py").read_text() == _LINES
            await ws.remove(f"t{n}")

    async with anyio.create_task_group() as tg:
        for n in range(WIDTH):
            tg.start_soon(churn, n)
    await ws.close()
