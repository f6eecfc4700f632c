"""Turns traces into the numbers of the table: ratios to the bounds, overhead, delays, bursts.

Every ratio is given twice: against the planned latencies (`*_ratio`) and against the durations
the tasks really took in that run (`*_ratio_measured`). A sleeping task wakes a little late (the
kernel's wake-up latency; `bench/loop.py` removes epoll's millisecond rounding), which the first
includes and the second does not; the second is what the scheduler and dispatcher themselves cost.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

from .bounds import critical_path, list_schedule, superstep_makespan
from .trace import Trace, percentile
from .workloads import Workload

CAP = 16
Metrics = dict[str, float]


def planned_bounds(workload: Workload) -> Metrics:
    deps, latency = workload.deps(), workload.latencies()
    return {
        "critical_path_s": critical_path(deps, latency),
        "list_schedule_s": list_schedule(deps, latency, cap=CAP),
        "superstep_s": superstep_makespan(deps, latency),
        "total_work_s": sum(latency.values()),
    }


def uncapped_metrics(trace: Trace, workload: Workload, bounds: Mapping[str, float]) -> Metrics:
    """Makespan against the critical path, and the delays before tasks start."""
    measured = critical_path(workload.deps(), trace.durations())
    burst = trace.largest_burst()
    dep_delays = trace.delays(trace.dep_done_at())
    metrics = {
        "makespan_s": trace.makespan_s,
        "cp_ratio": trace.makespan_s / bounds["critical_path_s"],
        "cp_ratio_measured": trace.makespan_s / measured,
        "timer_slack_ms": _median_slack_ms(trace, workload),
        "dep_p50_ms": percentile(dep_delays, 0.5) * 1e3,
        "dep_p99_ms": percentile(dep_delays, 0.99) * 1e3,
        "burst_tasks": float(len(burst)),
        "burst_ms": trace.burst_s(burst) * 1e3,
    }
    if trace.ready:  # our runner: "ready" as the scheduler reported it
        rest = trace.delays(trace.ready, skip=burst) or [0.0]
        metrics["ready_p50_ms"] = percentile(rest, 0.5) * 1e3
        metrics["ready_p99_ms"] = percentile(rest, 0.99) * 1e3
    return metrics


def capped_metrics(trace: Trace, workload: Workload, bounds: Mapping[str, float]) -> Metrics:
    """Makespan at the cap against greedy list scheduling of the same durations."""
    measured = list_schedule(workload.deps(), trace.durations(), cap=CAP)
    return {
        "makespan_s": trace.makespan_s,
        "ls_ratio": trace.makespan_s / bounds["list_schedule_s"],
        "ls_ratio_measured": trace.makespan_s / measured,
        "peak_running": float(trace.peak),
    }


def overhead_metrics(trace: Trace) -> Metrics:
    """A zero-latency run: wall (and this process's CPU) time per task is the per-task overhead.

    CPU time is robust to other load on the machine; wall time is what the target names.
    """
    tasks = len(trace.start)
    return {
        "overhead_us": trace.makespan_s / tasks * 1e6,
        "overhead_cpu_us": trace.cpu_s / tasks * 1e6,
    }


def _median_slack_ms(trace: Trace, workload: Workload) -> float:
    planned = workload.latencies()
    measured = trace.durations()
    return statistics.median(measured[t] - planned[t] for t in planned) * 1e3


def medians(runs: Sequence[Mapping[str, float]]) -> Metrics:
    """Per metric, the median over the repetitions that have it."""
    keys = dict.fromkeys(k for run in runs for k in run)
    return {k: statistics.median(run[k] for run in runs if k in run) for k in keys}
