"""The kill matrix of issue 10: the real CLI SIGKILLed at 12 points of a run, then resumed.

Run with: `python -m bench.kill_matrix` (12 points x 5 seeds) or `python -m bench.kill_matrix
--quick` (12 points x 1 seed); each seed also gets a 13th case, mid_stream with `--review none`
(tasks succeed while the plan streams, so the cut plan is asked for again with succeeded tasks
to keep). Each case seeds a workspace, runs `orchestrator run` against the
in-process fault server (`tests/kill_harness.py`), kills it at the point, checks `runs list`, runs
`orchestrator resume` and compares with an uninterrupted run of the same seed. Prints one line per
case and writes the table to `bench/results/kill_matrix.md`. Not part of CI (the test suite runs
a subset: tests/test_kill_matrix.py).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.sections import head_commit, write_section
from tests.kill_harness import (
    KILL_POINTS,
    Baseline,
    KillPoint,
    KillReport,
    Review,
    baseline,
    run_case,
)

RESULTS = Path(__file__).parent / "results"
_HEADING = "# Kill matrix (issue 10)\n\nWritten by `python -m bench.kill_matrix`."
_COLUMNS = (
    "point",
    "seed",
    "tasks",
    "status",
    "succeeded before kill",
    "re-runs of succeeded",
    "planner calls after kill",
    "patches twice",
    "resume wall s",
    "executor calls (uninterrupted)",
    "problems",
)
_LEGEND = (
    "succeeded before kill: tasks with `task_succeeded` in the journal once the killed process "
    "was reaped. re-runs of succeeded: executor requests the resumed process sent for those tasks "
    "(must be 0). planner calls after kill: the resumed process asked the planner again (only "
    "when the plan was not complete at the kill). patches twice: extra copies of the patcher's "
    "line in notes.txt (must be 0). "
    "executor calls: requests of both processes together, against the uninterrupted run of the "
    "same seed; the difference is the attempts in flight at the kill, run again. problems: every "
    "check that failed (status, per-task kind/summary/outputs against the uninterrupted run, "
    "`runs list` status, exit codes, `journal mismatch:` or a traceback on stderr)."
)


def row(report: KillReport, base: Baseline) -> list[str]:
    problems = "; ".join(p.replace("|", "/").replace("\n", " ")[:160] for p in report.problems)
    return [
        report.point + (" (review none)" if report.review == "none" else ""),
        str(report.seed),
        str(base.shape.n_tasks),
        report.status or "–",
        f"{len(report.succeeded_before_kill)}/{base.shape.n_tasks}",
        str(sum(report.reruns.values())),
        str(report.resumed_planner_calls),
        str(report.patches_twice),
        f"{report.resume_wall_s:.2f}",
        f"{report.worker_calls} ({report.baseline_calls})",
        problems or "none",
    ]


def summary(reports: Sequence[tuple[KillReport, Baseline]]) -> str:
    ok = sum(1 for r, _ in reports if not r.problems)
    reruns = sum(sum(r.reruns.values()) for r, _ in reports)
    twice = sum(r.patches_twice for r, _ in reports)
    completed = sum(1 for r, _ in reports if r.status == "completed")
    return (
        f"**{ok}/{len(reports)} cases passed every check**; {completed} resumed to completed; "
        f"{reruns} re-runs of succeeded tasks; {twice} patches applied twice."
    )


def section(label: str, reports: Sequence[tuple[KillReport, Baseline]]) -> str:
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    lines += ["| " + " | ".join(row(r, b)) + " |" for r, b in reports]
    return "\n".join(
        [
            f"## {label}",
            "",
            f"{when}; engine at `{head_commit()}`; Python {platform.python_version()}; "
            f"{len(reports)} cases; chat API; review on (but in the rows marked review none); "
            "streaming planner; ORCH_JOURNAL_VERIFY=1 in every process.",
            "",
            summary(reports),
            "",
            *lines,
            "",
            _LEGEND,
            "",
        ]
    )


def run_matrix(args: argparse.Namespace, root: Path) -> list[tuple[KillReport, Baseline]]:
    reports: list[tuple[KillReport, Baseline]] = []
    for seed in args.seeds:
        base = baseline(seed, _fresh(root, f"baseline-{seed}"), n_tasks=args.tasks)
        if base.problems:
            print(f"seed {seed}: the uninterrupted run failed: {base.problems}", file=sys.stderr)
        cases: list[tuple[KillPoint, Review]] = [(point, "all") for point in args.points]
        if args.unreviewed:
            cases.append(("mid_stream", "none"))
        for point, review in cases:
            work = _fresh(root, f"{point}-{review}-{seed}")
            report = run_case(point, work, base, review=review)
            reports.append((report, base))
            verdict = "ok" if not report.problems else "; ".join(report.problems)[:300]
            print(
                f"{point:18} {review:4} seed {seed}: {report.status or '-':9} "
                f"{len(report.succeeded_before_kill):2}/{base.shape.n_tasks} succeeded before "
                f"the kill, resume {report.resume_wall_s:5.2f} s: {verdict}",
                file=sys.stderr,
                flush=True,
            )
    return reports


def _fresh(root: Path, name: str) -> Path:
    path = root / name
    path.mkdir(parents=True)
    return path


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="12 points (+1 unreviewed) x 1 seed")
    parser.add_argument("--seeds", type=_ints, default=None, help="e.g. 1,2,3,4,5")
    parser.add_argument("--points", type=_points, default=list(KILL_POINTS))
    parser.add_argument(
        "--no-unreviewed",
        dest="unreviewed",
        action="store_false",
        help="leave out the extra mid_stream case with --review none per seed",
    )
    parser.add_argument("--tasks", type=int, default=None, help="tasks per plan (default: 12-16)")
    parser.add_argument("--keep", action="store_true", help="keep the workspaces and logs")
    parser.add_argument("--label", default=None, help="the section name in the results file")
    parser.add_argument("--out", type=Path, default=RESULTS / "kill_matrix.md")
    args = parser.parse_args(argv)
    args.seeds = args.seeds or ([1] if args.quick else [1, 2, 3, 4, 5])
    args.label = args.label or f"{head_commit()} ({'quick' if args.quick else 'full'})"
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="kill-matrix-"))
    try:
        reports = run_matrix(args, tmp)
    finally:
        if args.keep:
            print(f"workspaces kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    text = section(args.label, reports)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_section(
        args.out,
        args.label,
        text,
        heading=_HEADING,
    )
    return 0 if all(not r.problems for r, _ in reports) else 1


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def _points(text: str) -> list[KillPoint]:
    asked = [part for part in text.split(",") if part]
    points: list[KillPoint] = [p for p in KILL_POINTS if p in set(asked)]
    if len(points) != len(asked):
        raise argparse.ArgumentTypeError(f"points are some of {', '.join(KILL_POINTS)}")
    return points


if __name__ == "__main__":
    sys.exit(main())
