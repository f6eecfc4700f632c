"""Runs a workload through the real `Scheduler` and `Dispatcher` with sleeping fake executors.

`python -m bench.run_orchestrator --rss SIZE` runs the random DAG of SIZE tasks in this fresh
interpreter and prints its peak RSS as JSON; `peak_rss_mb` calls it in a subprocess.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from time import perf_counter, process_time
from typing import Protocol

import anyio

from orchestrator.executor import Dispatcher
from orchestrator.models import TaskId
from orchestrator.plan import validate_plan
from orchestrator.scheduler import Scheduler

from .loop import run as precise_run
from .trace import BenchCheckError, Trace
from .workloads import CRITICAL_PATH_S, Workload, random_dag, scaled_to


class DispatcherFactory(Protocol):
    """`Dispatcher` itself, or a drop-in variant to measure a proposed change."""

    def __call__(
        self,
        scheduler: Scheduler,
        *,
        start_task: Callable[[TaskId], Awaitable[TaskId]],
        on_message: Callable[[TaskId], object],
    ) -> Dispatcher[TaskId]: ...


async def run_workload(
    workload: Workload,
    *,
    max_parallel: int | None,
    dispatcher: DispatcherFactory = Dispatcher,
) -> Trace:
    """Run every task once through the engine's scheduler and dispatch loop; check the rules.

    Priorities come from `validate_plan`, as in the engine. The ready time of the first tasks is
    the moment the dispatch loop starts (they were added before it).

    Raises:
        BenchCheckError: a task ran twice or never, before a dependency, or above the cap.
    """
    graph = validate_plan(workload.to_plan())
    scheduler = Scheduler(max_parallel=max_parallel)
    roots = [
        tid
        for tid in graph.order
        if scheduler.add(tid, graph.tasks[tid].deps, priority=graph.priority[tid])
    ]
    trace = Trace(workload, cap=max_parallel)
    latency = workload.latencies()
    started, ended, ready, succeed = trace.started, trace.ended, trace.ready, scheduler.succeed

    async def start_task(task_id: TaskId) -> TaskId:
        started(task_id)
        await anyio.sleep(latency[task_id])
        ended(task_id)
        return task_id

    def on_message(task_id: TaskId) -> None:
        now = perf_counter()
        for tid in succeed(task_id):
            ready[tid] = now

    loop = dispatcher(scheduler, start_task=start_task, on_message=on_message)
    cpu = process_time()
    trace.started_at = perf_counter()
    for tid in roots:
        ready[tid] = trace.started_at
    await loop.run()
    trace.finished_at = perf_counter()
    trace.cpu_s = process_time() - cpu
    trace.check()
    if scheduler.count("succeeded") != len(workload.tasks) or not scheduler.is_finished():
        raise BenchCheckError(f"scheduler ended with {scheduler.count('succeeded')} succeeded")
    return trace


def run_sync(
    workload: Workload,
    *,
    max_parallel: int | None,
    dispatcher: DispatcherFactory = Dispatcher,
) -> Trace:
    """`run_workload` on a fresh event loop, after a full garbage collection."""
    gc.collect()
    return precise_run(_run_kw, workload, max_parallel, dispatcher)


async def _run_kw(
    workload: Workload, max_parallel: int | None, dispatcher: DispatcherFactory
) -> Trace:
    return await run_workload(workload, max_parallel=max_parallel, dispatcher=dispatcher)


def prep_time_s(workload: Workload, *, repeats: int = 7) -> float:
    """Median seconds to validate the workload's plan and fill a `Scheduler` with it."""
    plan = workload.to_plan()
    times: list[float] = []
    for _ in range(repeats):
        begin = perf_counter()
        graph = validate_plan(plan)
        scheduler = Scheduler(max_parallel=16)
        for tid in graph.order:
            scheduler.add(tid, graph.tasks[tid].deps, priority=graph.priority[tid])
        times.append(perf_counter() - begin)
    return statistics.median(times)


def peak_rss_mb(size: int, *, critical_path_s: float, timeout_s: float = 300.0) -> dict[str, float]:
    """Run the random DAG of `size` tasks uncapped in a fresh interpreter; its RSS in MB."""
    command = [
        sys.executable, "-m", "bench.run_orchestrator",
        "--rss", str(size), "--critical-path", str(critical_path_s),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def maxrss_mb() -> float:
    """This process's peak RSS: `VmHWM` of /proc/self/status, else `ru_maxrss`.

    `ru_maxrss` survives `execve`, so in a subprocess it starts at the parent's size (the bench
    parent with LangGraph loaded is ~120 MB); `VmHWM` belongs to the new address space.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rss", type=int, required=True, help="tasks in the random DAG")
    parser.add_argument("--critical-path", type=float, default=CRITICAL_PATH_S["random"])
    args = parser.parse_args(argv)
    baseline = maxrss_mb()
    workload = scaled_to(random_dag(size=args.rss), args.critical_path)
    trace = run_sync(workload, max_parallel=None)
    print(json.dumps({
        "peak_rss_mb": maxrss_mb(),
        "baseline_rss_mb": baseline,
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "tasks": len(workload.tasks),
        "makespan_s": trace.makespan_s,
    }))


if __name__ == "__main__":
    main()
