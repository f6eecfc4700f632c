"""What the journal costs per task: time in encoding, appending and committing events, commits and
fsyncs per task, through the whole engine (`Orchestrator.run`, instant scripted model).

    python -m bench.journal_cost [--tasks 1000] [--reps 3]

Time is measured by wrapping `journal.encode`, `Journal.append` and `Journal.commit` (the fold's
`apply` is reported apart: it is the state, not the journal). fsyncs are counted by running one
run per durability mode under `strace -f -c` (skipped when strace is missing). Writes a section of
`bench/results/journal_cost.md`.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio

from orchestrator import journal as journal_module

from .engine_overhead import plan_reply, run_once

_STRACE = ("strace", "-f", "-c", "-e", "trace=fsync,fdatasync")
_TIMED: dict[str, float] = {}
_COUNTS: dict[str, int] = {}


def _timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _TIMED[name] = _TIMED.get(name, 0.0) + time.perf_counter() - start
            _COUNTS[name] = _COUNTS.get(name, 0) + 1

    return wrapper


def _instrument() -> None:
    journal_module._encode = _timed("encode", journal_module._encode)  # pyright: ignore[reportPrivateUsage]
    journal_module.apply = _timed("apply", journal_module.apply)  # the Recorder's fold step
    journal_module.Journal.append = _timed("append", journal_module.Journal.append)
    journal_module.Journal.commit = _timed("commit", journal_module.Journal.commit)


def measure_time(tasks: int, reps: int) -> dict[str, float]:
    """µs per task in each journal step, median over `reps` runs."""
    _instrument()
    plan = plan_reply("independent", tasks)
    per_rep: list[dict[str, float]] = []
    for _ in range(reps + 1):  # the first is a warm-up
        _TIMED.clear()
        _COUNTS.clear()
        anyio.run(run_once, plan, "none")
        row = {k: v / tasks * 1e6 for k, v in _TIMED.items()}
        row["events"] = _COUNTS.get("encode", 0) / tasks
        row["commits"] = _COUNTS.get("commit", 0) / tasks
        per_rep.append(row)
    keys = per_rep[-1].keys()
    return {k: statistics.median(r.get(k, 0.0) for r in per_rep[1:]) for k in keys}


def count_fsyncs(tasks: int, durability: str) -> float | None:
    """fsync + fdatasync calls per task in one run under strace, or None without strace."""
    if shutil.which("strace") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "strace.txt"
        code = (
            "import anyio; import orchestrator.journal as j; orig = j.Journal.__init__; "
            "j.Journal.__init__ = lambda self, path, durability='process': "
            f"orig(self, path, durability={durability!r}); "
            "from bench.engine_overhead import plan_reply, run_once; "
            f"anyio.run(run_once, plan_reply('independent', {tasks}), 'none')"
        )
        subprocess.run(
            [*_STRACE, "-o", str(out), sys.executable, "-c", code],
            check=True,
            cwd=Path(__file__).resolve().parent.parent,
            capture_output=True,
        )
        calls = 0
        for line in out.read_text().splitlines():
            parts = line.split()
            if parts and parts[-1] in ("fsync", "fdatasync"):
                calls += int(parts[3])
        return calls / tasks


def report(tasks: int, reps: int, timing: dict[str, float], fsyncs: dict[str, float | None]) -> str:
    journal_us = sum(timing.get(k, 0.0) for k in ("encode", "append", "commit"))
    lines = [
        f"## {tasks} independent tasks, review none, median of {reps}",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; Python {platform.python_version()}"
        f"; `python -m bench.journal_cost --tasks {tasks} --reps {reps}`",
        "",
        "| step | µs per task |",
        "|---|---:|",
        f"| encode (event → redacted JSON) | {timing.get('encode', 0):.1f} |",
        f"| append (buffer) | {timing.get('append', 0):.1f} |",
        f"| commit (SQLite transaction) | {timing.get('commit', 0):.1f} |",
        f"| **journal total** | **{journal_us:.1f}** |",
        f"| fold (`apply`, the state itself) | {timing.get('apply', 0):.1f} |",
        "",
        f"- events per task: {timing.get('events', 0):.2f}; commits per task: "
        f"{timing.get('commits', 0):.2f}",
    ]
    for mode, value in fsyncs.items():
        shown = "strace not available" if value is None else f"{value:.2f}"
        lines.append(f"- fsync + fdatasync per task, durability `{mode}`: {shown}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/journal_cost.md"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    fsyncs = {m: count_fsyncs(args.tasks, m) for m in ("process", "machine")}
    timing = measure_time(args.tasks, args.reps)
    if args.json:
        print(json.dumps({"timing": timing, "fsyncs": fsyncs}, indent=2))
    text = "# Journal cost (issue 10)\n\n" + report(args.tasks, args.reps, timing, fsyncs)
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
