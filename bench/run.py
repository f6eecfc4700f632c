"""The scheduler benchmark of issue 5 in one command: every workload, ours beside LangGraph.

Run with: `python -m bench.run` (3 repetitions, a few minutes on 2 cores), or
`python -m bench.run --quick` (1 repetition, latencies / 4, LangGraph up to 2,000 tasks).
Prints the table and writes `bench/results/latest.json` and `bench/results/latest.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from .measure import (
    CAP,
    Metrics,
    capped_metrics,
    medians,
    overhead_metrics,
    planned_bounds,
    uncapped_metrics,
)
from .report import markdown, targets
from .run_orchestrator import peak_rss_mb, prep_time_s, run_sync
from .run_streaming import measure_streaming_sync
from .trace import Trace
from .workloads import CRITICAL_PATH_S, Workload, layered, standard

RESULTS = Path(__file__).parent / "results"


def _ours_once(workload: Workload, bounds: Metrics) -> Metrics:
    uncapped = run_sync(workload, max_parallel=None)
    capped = run_sync(workload, max_parallel=CAP)
    zero = run_sync(workload.zero_latency(), max_parallel=None)
    return {
        **uncapped_metrics(uncapped, workload, bounds),
        **capped_metrics(capped, workload, bounds),
        **overhead_metrics(zero),
    }


class _LangGraph:
    """LangGraph's side of one workload, or why it was not run."""

    def __init__(self, workload: Workload, *, max_tasks: int, timeout_s: float) -> None:
        self.runner: Any = None
        self.note: str | None = None
        self._timeout_s = timeout_s
        if len(workload.tasks) > max_tasks:
            self.note = f"LangGraph skipped on {workload.name}: above {max_tasks:,} tasks."
            return
        try:
            from .run_langgraph import LangGraphRunner
        except ImportError as exc:
            self.note = f"LangGraph not installed ({exc}); `pip install -e .[bench]`."
            return
        self.runner = LangGraphRunner(workload)

    def once(self, workload: Workload, bounds: Metrics) -> Metrics | None:
        if self.runner is None:
            return None
        traces: list[Trace] = []
        for cap, zero in ((None, False), (CAP, False), (None, True)):
            trace = self.runner.run_sync(
                max_parallel=cap, zero_latency=zero, timeout_s=self._timeout_s
            )
            if trace is None:
                self.note = f"LangGraph timed out (> {self._timeout_s:.0f} s) on {workload.name}."
                self.runner = None
                return None
            traces.append(trace)
        uncapped, capped, zero_trace = traces
        return {
            **uncapped_metrics(uncapped, workload, bounds),
            **capped_metrics(capped, workload, bounds),
            **overhead_metrics(zero_trace),
            "compile_s": self.runner.compile_s,
        }


def measure_workload(workload: Workload, *, reps: int, lg_max_tasks: int) -> dict[str, Any]:
    """Ours and LangGraph, alternating, `reps` times; the medians and every repetition."""
    bounds = planned_bounds(workload)
    langgraph = _LangGraph(workload, max_tasks=lg_max_tasks, timeout_s=120.0)
    ours_runs: list[Metrics] = []
    lg_runs: list[Metrics] = []
    for _ in range(reps):
        ours_runs.append(_ours_once(workload, bounds))
        if (lg := langgraph.once(workload, bounds)) is not None:
            lg_runs.append(lg)
        print(f"  {workload.name}: repetition {len(ours_runs)} of {reps} done", flush=True)
    return {
        "name": workload.name,
        "description": workload.description,
        "tasks": len(workload.tasks),
        "bounds": bounds,
        "ours": medians(ours_runs),
        "langgraph": medians(lg_runs) if lg_runs else None,
        "runs": {"ours": ours_runs, "langgraph": lg_runs},
        "note": langgraph.note,
    }


def measure_extras(*, quick: bool, reps: int, lg_max_tasks: int) -> dict[str, Any]:
    """Peak RSS (subprocesses), plan preparation time and streaming first dispatch."""
    shrink = 4.0 if quick else 1.0
    random_cp = CRITICAL_PATH_S["random"] / shrink
    extras: dict[str, Any] = {"rss_ours": peak_rss_mb(10_000, critical_path_s=random_cp)}
    if lg_max_tasks >= 10_000:
        try:
            from .run_langgraph import peak_rss_mb as langgraph_rss
        except ImportError:
            pass
        else:
            extras["rss_langgraph"] = langgraph_rss(10_000, critical_path_s=random_cp)
    plan = layered()
    extras["prep"] = {
        "tasks": len(plan.tasks),
        "repeats": 7,
        "median_ms": prep_time_s(plan, repeats=7) * 1e3,
    }
    streams = [measure_streaming_sync(generation_s=1.0) for _ in range(reps)]
    middle = sorted(streams, key=lambda s: s.fraction)[len(streams) // 2]
    extras["streaming"] = {
        "measured": "Engine.run (DagPlanner.plan_stream, Supervisor, Dispatcher)",
        "fraction": middle.fraction,
        "fractions": [s.fraction for s in streams],
        "first_dispatch_s": middle.first_dispatch_s,
        "generation_s": middle.generation_s,
        "earliest_fraction": middle.earliest_fraction,
        "tasks": middle.tasks,
        "plan_chars": middle.plan_chars,
    }
    return extras


def _versions() -> dict[str, str]:
    found: dict[str, str] = {}
    for name in ("anyio", "langgraph"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 repetition, shorter latencies")
    parser.add_argument("--reps", type=int, help="repetitions (default 3, 1 with --quick)")
    parser.add_argument(
        "--langgraph-max-tasks",
        type=int,
        help="skip LangGraph above this size (default 10000, 2000 with --quick)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where latest.json/md go")
    args = parser.parse_args(argv)
    args.reps = args.reps or (1 if args.quick else 3)
    args.langgraph_max_tasks = args.langgraph_max_tasks or (2_000 if args.quick else 10_000)
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse(argv)
    began, load_before = time.perf_counter(), os.getloadavg()[0]
    rows: list[dict[str, Any]] = []
    lg_max = args.langgraph_max_tasks
    for workload in standard(quick=args.quick):
        print(f"{workload.name} ({len(workload.tasks):,} tasks)", flush=True)
        rows.append(measure_workload(workload, reps=args.reps, lg_max_tasks=lg_max))
    print("peak RSS, plan preparation, streaming", flush=True)
    extras = measure_extras(quick=args.quick, reps=args.reps, lg_max_tasks=lg_max)
    extras["environment"] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "python": platform.python_version(),
        **_versions(),
        "cpus": os.cpu_count(),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "duration_s": time.perf_counter() - began,
        "repetitions": args.reps,
        "quick": args.quick,
    }
    found = targets(rows, extras)
    text = markdown(rows, extras, found)
    print("\n" + text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.md").write_text(text)
    document = {"workloads": rows, **extras, "targets": [asdict(t) for t in found]}
    (args.out / "latest.json").write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(f"wrote {args.out / 'latest.json'} and {args.out / 'latest.md'}")


if __name__ == "__main__":
    main()
