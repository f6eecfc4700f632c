"""Runs the same workloads on LangGraph's graph API: one node per task, edges from dependencies.

A task with several dependencies gets one waiting edge from all of them (`add_edge([a, b], t)`), so
it runs once, after all of them. A summing reducer on the state lets any number of nodes write in
one step. LangGraph executes in supersteps (Pregel): a node runs in the step after its last
dependency's step, and a step ends when its slowest node does.

`python -m bench.run_langgraph --rss SIZE` runs the random DAG of SIZE tasks in this fresh
interpreter and prints its peak RSS as JSON.
"""

from __future__ import annotations

import argparse
import gc
import json
import operator
import subprocess
import sys
from collections.abc import Awaitable, Callable
from time import perf_counter, process_time
from typing import Annotated, Any, TypedDict

import anyio
from langgraph.graph import END, START, StateGraph

from orchestrator.models import TaskId

from .loop import run as precise_run
from .run_orchestrator import maxrss_mb
from .trace import BenchCheckError, Trace
from .workloads import CRITICAL_PATH_S, Workload, random_dag, scaled_to


class _State(TypedDict):
    done: Annotated[int, operator.add]


class LangGraphRunner:
    """One compiled graph per workload, run as often as needed (compiling 10,000 nodes takes s)."""

    def __init__(self, workload: Workload) -> None:
        self.workload = workload
        self._trace: Trace | None = None
        self._latency = workload.latencies()
        begin = perf_counter()
        self._graph = self._build()
        self.compile_s = perf_counter() - begin

    def _build(self) -> Any:  # CompiledStateGraph; its generics do not help here
        builder = StateGraph(_State)
        needed: set[TaskId] = set()
        for task in self.workload.tasks:
            builder.add_node(task.id, self._node(task.id))  # pyright: ignore[reportArgumentType, reportUnknownMemberType] - LangGraph's generics
            if not task.deps:
                builder.add_edge(START, task.id)
            elif len(task.deps) == 1:
                builder.add_edge(task.deps[0], task.id)
            else:
                builder.add_edge(list(task.deps), task.id)
            needed.update(task.deps)
        for task in self.workload.tasks:
            if task.id not in needed:
                builder.add_edge(task.id, END)
        return builder.compile()  # pyright: ignore[reportUnknownMemberType] - LangGraph's generics

    def _node(self, task_id: TaskId) -> Callable[[_State], Awaitable[dict[str, int]]]:
        async def node(state: _State) -> dict[str, int]:
            trace = self._trace
            assert trace is not None
            trace.started(task_id)
            await anyio.sleep(self._latency[task_id])
            trace.ended(task_id)
            return {"done": 1}

        return node

    async def run(
        self, *, max_parallel: int | None, zero_latency: bool = False, timeout_s: float = 120.0
    ) -> Trace | None:
        """One run under LangGraph's `max_concurrency`; None when it exceeds `timeout_s`.

        Raises:
            BenchCheckError: a node ran twice or never, before a dependency, or above the cap.
        """
        workload = self.workload.zero_latency() if zero_latency else self.workload
        self._latency = workload.latencies()
        trace = self._trace = Trace(workload, cap=max_parallel)
        config: dict[str, Any] = {"recursion_limit": len(workload.tasks) + 10}
        if max_parallel is not None:
            config["max_concurrency"] = max_parallel
        cpu = process_time()
        trace.started_at = perf_counter()
        state: dict[str, int] = {}
        with anyio.move_on_after(timeout_s) as scope:
            state = await self._graph.ainvoke({"done": 0}, config=config)
        trace.finished_at = perf_counter()
        trace.cpu_s = process_time() - cpu
        if scope.cancelled_caught:
            return None
        trace.check()
        if state["done"] != len(workload.tasks):
            raise BenchCheckError(f"LangGraph reported {state['done']} nodes done")
        return trace

    def run_sync(
        self, *, max_parallel: int | None, zero_latency: bool = False, timeout_s: float = 120.0
    ) -> Trace | None:
        """`run` on a fresh event loop, after a full garbage collection."""
        gc.collect()
        return precise_run(self._run_kw, max_parallel, zero_latency, timeout_s)

    async def _run_kw(
        self, max_parallel: int | None, zero_latency: bool, timeout_s: float
    ) -> Trace | None:
        return await self.run(
            max_parallel=max_parallel, zero_latency=zero_latency, timeout_s=timeout_s
        )


def peak_rss_mb(size: int, *, critical_path_s: float, timeout_s: float = 300.0) -> dict[str, float]:
    """Compile and run the random DAG of `size` tasks uncapped in a fresh interpreter."""
    command = [
        sys.executable,
        "-m",
        "bench.run_langgraph",
        "--rss",
        str(size),
        "--critical-path",
        str(critical_path_s),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rss", type=int, required=True, help="tasks in the random DAG")
    parser.add_argument("--critical-path", type=float, default=CRITICAL_PATH_S["random"])
    args = parser.parse_args(argv)
    baseline = maxrss_mb()
    workload = scaled_to(random_dag(size=args.rss), args.critical_path)
    trace = LangGraphRunner(workload).run_sync(max_parallel=None)
    print(
        json.dumps(
            {
                "peak_rss_mb": maxrss_mb(),
                "baseline_rss_mb": baseline,
                "tasks": len(workload.tasks),
                "makespan_s": None if trace is None else trace.makespan_s,
            }
        )
    )


if __name__ == "__main__":
    main()
