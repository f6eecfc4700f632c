"""The yardsticks: the critical path and the greedy list-scheduling makespan under a cap.

Both take `deps` in dependency order (every task after its dependencies) and a latency per task,
so they apply to planned latencies and to the durations a run actually measured alike.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import TypeVar

K = TypeVar("K", bound=str)
"""Task ids: `TaskId` in the bench, any string in a REPL."""


def remaining_path(deps: Mapping[K, tuple[K, ...]], latency: Mapping[K, float]) -> dict[K, float]:
    """Per task, the longest latency path from its start to a sink, its own latency included."""
    dependents: dict[K, list[K]] = {t: [] for t in deps}
    for task, needs in deps.items():
        for dep in needs:
            dependents[dep].append(task)
    rank: dict[K, float] = {}
    for task in reversed(tuple(deps)):
        rank[task] = latency[task] + max((rank[d] for d in dependents[task]), default=0.0)
    return rank


def critical_path(deps: Mapping[K, tuple[K, ...]], latency: Mapping[K, float]) -> float:
    """The longest latency path: no scheduler can finish sooner."""
    return max(remaining_path(deps, latency).values(), default=0.0)


def list_schedule(
    deps: Mapping[K, tuple[K, ...]], latency: Mapping[K, float], *, cap: int | None
) -> float:
    """Makespan of greedy list scheduling, longest remaining path first, at most `cap` at once.

    An event simulation of the policy our scheduler implements, with zero overhead: whenever a
    slot is free and a task is ready, the ready task with the longest remaining path starts
    (ties: the one that became ready first).
    """
    priority = remaining_path(deps, latency)
    dependents: dict[K, list[K]] = {t: [] for t in deps}
    missing = {t: len(needs) for t, needs in deps.items()}
    for task, needs in deps.items():
        for dep in needs:
            dependents[dep].append(task)
    seq = 0
    ready: list[tuple[float, int, K]] = []
    for task, count in missing.items():
        if count == 0:
            ready.append((-priority[task], seq, task))
            seq += 1
    heapq.heapify(ready)
    running: list[tuple[float, K]] = []
    now = 0.0
    while ready or running:
        while ready and (cap is None or len(running) < cap):
            task = heapq.heappop(ready)[2]
            heapq.heappush(running, (now + latency[task], task))
        now = running[0][0]
        while running and running[0][0] == now:
            done = heapq.heappop(running)[1]
            for dependent in dependents[done]:
                missing[dependent] -= 1
                if missing[dependent] == 0:
                    heapq.heappush(ready, (-priority[dependent], seq, dependent))
                    seq += 1
    return now


def superstep_makespan(deps: Mapping[K, tuple[K, ...]], latency: Mapping[K, float]) -> float:
    """Makespan of a level-barrier executor (LangGraph's supersteps) with zero overhead.

    A task runs in the step after its last dependency's step, and each step lasts as long as its
    slowest task.
    """
    step: dict[K, int] = {}
    longest: dict[int, float] = {}
    for task, needs in deps.items():
        level = 1 + max((step[d] for d in needs), default=-1)
        step[task] = level
        longest[level] = max(longest.get(level, 0.0), latency[task])
    return sum(longest.values())
