"""What a writing task's private copy costs: isolate + a small edit + commit + merge + remove.

    python -m bench.isolation [--files 1000] [--tasks 40]

On a generated git repo (`--files` files of ~2 KB in nested dirs), each task edits one file and
adds one, through `orchestrator.workspaces.Workspaces`. Schedules: `sequential` (main has not
moved when the task merges: the fast path), `batch of 8` (8 copies made before any merge, so 7 of
8 merges are real three-way merges), and `sequential, spares=0` (every copy made fresh by `git
worktree add` and deleted on remove). Warm-up tasks (the first 2, the first batch) are left out.
Also times the two ways to make a fresh copy (`git worktree add` vs `cp -a --reflink=auto`).
Writes `bench/results/isolation.md`.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import anyio

from orchestrator.workspaces import Workspaces

_PHASES = ("create", "commit", "merge", "cleanup")
_BATCH = 8


def make_repo(root: Path, files: int) -> None:
    """A git repo of `files` files of ~2 KB, 10 per directory, two levels deep, one commit."""
    for i in range(files):
        path = root / "src" / f"d{i // 100}" / f"s{i // 10 % 10}" / f"f{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "".join(f"value_{i}_{j} = {j} * {i}  # padding padding\n" for j in range(48))
        )
    (root / ".gitignore").write_text(".venv/\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    git = ("git", "-c", "user.name=b", "-c", "user.email=b@example.com")
    for args in (("init", "-q"), ("add", "-A"), ("commit", "-q", "-m", "generated")):
        subprocess.run([*git, *args], cwd=root, env=env, check=True)


async def _task(ws: Workspaces, task_id: str, target: Path) -> tuple[Path, str, dict[str, float]]:
    """Isolate and edit (timed apart): the copy, its base and the create time."""
    start = time.perf_counter()
    copy = await ws.isolate(task_id)
    created = time.perf_counter()
    edited = copy / target
    edited.write_text(edited.read_text() + f"# edited by {task_id}\n")
    (copy / "src" / f"{task_id}.py").write_text(f"TASK = {task_id!r}\n")
    return copy, ws.base_of(task_id) or "", {"create": (created - start) * 1e3}


async def _finish(ws: Workspaces, task_id: str, base: str, row: dict[str, float]) -> None:
    start = time.perf_counter()
    commit = await ws.commit(task_id)
    committed = time.perf_counter()
    outcome = await ws.merge(task_id, commit, base=base)
    merged = time.perf_counter()
    await ws.remove(task_id)
    done = time.perf_counter()
    assert len(outcome.merged) == 2, outcome  # the edit and the new file
    assert not outcome.conflicts, outcome
    row |= {
        "commit": (committed - start) * 1e3,
        "merge": (merged - committed) * 1e3,
        "cleanup": (done - merged) * 1e3,
    }


def _targets(files: int) -> list[Path]:
    return [Path("src") / f"d{i // 100}" / f"s{i // 10 % 10}" / f"f{i}.py" for i in range(files)]


async def sequential(
    main: Path, store: Path, tasks: int, files: int, spares: int = 8
) -> list[dict[str, float]]:
    ws = Workspaces(main, store, spares=spares)
    targets = _targets(files)
    rows: list[dict[str, float]] = []
    for n in range(tasks + 2):  # the first two warm the store and git's stat cache
        _, base, row = await _task(ws, f"s{n}", targets[(n * 37) % files])
        await _finish(ws, f"s{n}", base, row)
        rows.append(row)
    await ws.close()
    return rows[2:]


async def batched(main: Path, store: Path, tasks: int, files: int) -> list[dict[str, float]]:
    ws = Workspaces(main, store)
    targets = _targets(files)
    rows: list[dict[str, float]] = []
    for batch in range(1 + (tasks + _BATCH - 1) // _BATCH):  # the first batch warms the spares
        ids = [f"b{batch}_{k}" for k in range(_BATCH)]
        picks = [targets[(batch * _BATCH + k) * 37 % files] for k in range(_BATCH)]  # distinct
        made = [await _task(ws, t, target) for t, target in zip(ids, picks, strict=True)]
        for task_id, (_, base, row) in zip(ids, made, strict=True):
            await _finish(ws, task_id, base, row)
            rows.append(row)
    await ws.close()
    return rows[_BATCH:]


async def copy_ways(main: Path, store: Path, reps: int) -> dict[str, float]:
    """Median ms to make and then delete one copy, by `git worktree add` and by `cp -a`."""
    ws = Workspaces(main, store)
    await ws.isolate("warm")
    base = ws.base_of("warm") or ""
    sources = [
        str(p) async for p in anyio.Path(main).iterdir() if p.name not in (".git", ".orchestrator")
    ]
    times: dict[str, list[float]] = {"worktree add": [], "cp -a --reflink=auto": [], "rm -rf": []}
    for n in range(reps):
        start = time.perf_counter()
        add = ("worktree", "add", "-q", "--detach", str(store / f"w{n}"), base)
        await anyio.run_process(["git", f"--git-dir={store / 'git'}", *add])
        times["worktree add"].append((time.perf_counter() - start) * 1e3)
        target = store / f"c{n}"
        target.mkdir()
        start = time.perf_counter()
        await anyio.run_process(["cp", "-a", "--reflink=auto", *sources, str(target)])
        times["cp -a --reflink=auto"].append((time.perf_counter() - start) * 1e3)
        start = time.perf_counter()
        await anyio.to_thread.run_sync(shutil.rmtree, target)
        times["rm -rf"].append((time.perf_counter() - start) * 1e3)
    await ws.close()
    return {k: statistics.median(v) for k, v in times.items()}


def _median(rows: Sequence[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def report(
    files: int, tasks: int, runs: dict[str, list[dict[str, float]]], copies: dict[str, float]
) -> str:
    names = list(runs)
    git = subprocess.run(["git", "--version"], capture_output=True, text=True, check=True)
    git_version = git.stdout.strip()
    lines = [
        "# Workspace isolation: cost per writing task",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; Python "
        f"{platform.python_version()}; {git_version}; {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f} at the end; `python -m bench.isolation --files {files} "
        f"--tasks {tasks}`",
        "",
        f"A git repo of {files} files of ~2 KB; each task: isolate, edit one file + add one, "
        "commit, merge, remove. Median ms over the tasks (target: total ≤ 100 ms); the last "
        "row is the 90th percentile of the total.",
        "",
        "| phase | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for phase in _PHASES:
        lines.append(
            f"| {phase} | " + " | ".join(f"{_median(runs[n], phase):.1f}" for n in names) + " |"
        )
    totals = [statistics.median(sum(r[p] for p in _PHASES) for r in runs[n]) for n in names]
    lines.append("| **total** | " + " | ".join(f"**{t:.1f}**" for t in totals) + " |")
    p90 = [
        statistics.quantiles([sum(r[p] for p in _PHASES) for r in runs[n]], n=10)[-1] for n in names
    ]
    lines.append("| total, p90 | " + " | ".join(f"{t:.1f}" for t in p90) + " |")
    lines += [
        "",
        "`sequential`: main has not moved since the copy was made (merge = checkout of the "
        f"task's paths). `batch of {_BATCH}`: {_BATCH} copies made first, then merged in order, "
        f"so {_BATCH - 1} of {_BATCH} merges run `git merge-tree`. Both recycle removed copies "
        "(`spares=8`, the default): create = snapshot main + `checkout --force` + `clean -ffdx` "
        "of a parked copy, cleanup = a rename. `sequential, spares=0`: every copy is a fresh "
        "`git worktree add` and is deleted on remove (a run's first copies, or `spares=0`).",
        "",
        f"## Making a fresh copy of the {files} files: the two ways (median ms)",
        "",
        "Both are bound by creating every file (`--reflink=auto` falls back to a full copy on "
        "file systems without reflinks, as ext4). `cp -a` would also copy ignored files (a "
        ".venv) and leave git no stat cache, so fresh copies use `git worktree add`, and the "
        "steady state avoids both by recycling parked copies.",
        "",
        "| way | ms |",
        "|---|---:|",
        *(f"| {way} | {ms:.1f} |" for way, ms in copies.items()),
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path("bench/results/isolation.md"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        runs: dict[str, list[dict[str, float]]] = {}
        schedules = {
            "sequential": sequential,
            f"batch of {_BATCH}": batched,
            "sequential, spares=0": partial(sequential, spares=0),
        }
        for n, (name, schedule) in enumerate(schedules.items()):
            main_dir = root / str(n) / "main"
            main_dir.mkdir(parents=True)
            make_repo(main_dir, args.files)
            store = main_dir / ".orchestrator" / "ws"
            runs[name] = anyio.run(schedule, main_dir, store, args.tasks, args.files)
        reps = min(15, max(3, args.tasks))
        copies = anyio.run(copy_ways, root / "0" / "main", root / "copies", reps)
    text = report(args.files, args.tasks, runs, copies)
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
