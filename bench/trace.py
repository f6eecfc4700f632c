"""What one run did, task by task, and the rules every run must keep.

The fake executor calls `started` and `ended` around its sleep. `started` checks, the moment a task
starts, that it never started before and that its dependencies have all finished; the running
count gives the concurrency the cap is checked against. `check` raises on any broken rule.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence, Set
from time import perf_counter

from orchestrator.models import TaskId

from .workloads import Workload


class BenchCheckError(Exception):
    """A run broke a scheduling rule: a task ran twice or never, too early, or above the cap."""


class Trace:
    """Per-task ready / start / end times of one run, recorded as it happens."""

    __slots__ = (
        "_deps",
        "cap",
        "cpu_s",
        "end",
        "finished_at",
        "peak",
        "problems",
        "ready",
        "running",
        "start",
        "started_at",
    )

    def __init__(self, workload: Workload, *, cap: int | None) -> None:
        self._deps = workload.deps()
        self.cap = cap
        self.ready: dict[TaskId, float] = {}
        """When the scheduler reported the task ready (our runner only)."""
        self.start: dict[TaskId, float] = {}
        self.end: dict[TaskId, float] = {}
        self.running = 0
        self.peak = 0
        self.problems: list[str] = []
        self.started_at = 0.0
        self.finished_at = 0.0
        self.cpu_s = 0.0
        """CPU seconds this process spent between `started_at` and `finished_at`."""

    def started(self, task_id: TaskId) -> None:
        """Record a start and check it: not a second run, and every dependency finished."""
        now = perf_counter()
        if task_id in self.start:
            self.problems.append(f"{task_id} started twice")
        self.start[task_id] = now
        end = self.end
        for dep in self._deps[task_id]:
            if dep not in end:
                self.problems.append(f"{task_id} started before its dependency {dep} finished")
        self.running += 1
        if self.running > self.peak:
            self.peak = self.running

    def ended(self, task_id: TaskId) -> None:
        self.end[task_id] = perf_counter()
        self.running -= 1

    @property
    def makespan_s(self) -> float:
        return self.finished_at - self.started_at

    def check(self) -> None:
        """Raise `BenchCheckError` unless every task ran exactly once, in order, under the cap."""
        problems = list(self.problems)
        never = [t for t in self._deps if t not in self.end]
        if never:
            problems.append(f"{len(never)} tasks never ran, e.g. {never[:3]}")
        if self.cap is not None and self.peak > self.cap:
            problems.append(f"{self.peak} tasks ran at once, above the cap of {self.cap}")
        if problems:
            raise BenchCheckError("; ".join(problems[:5]))

    def durations(self) -> dict[TaskId, float]:
        """How long each task really took (its sleep plus the event loop's timer slack)."""
        return {t: self.end[t] - self.start[t] for t in self._deps}

    def ready_at(self) -> dict[TaskId, float]:
        """When each task became ready (the scheduler's word, else its last dependency's end)."""
        return dict(self.ready) if self.ready else self.dep_done_at()

    def dep_done_at(self) -> dict[TaskId, float]:
        """When each task's last dependency ended (the run's start for tasks without any)."""
        end = self.end
        return {
            t: max((end[d] for d in deps), default=self.started_at)
            for t, deps in self._deps.items()
        }

    def delays(
        self, ready: Mapping[TaskId, float], *, skip: Set[TaskId] = frozenset()
    ) -> list[float]:
        """Seconds from `ready` to "started", per task not in `skip`."""
        return [self.start[t] - when for t, when in ready.items() if t not in skip]

    def largest_burst(self) -> frozenset[TaskId]:
        """The largest set of tasks that became ready at one moment (the earliest on a tie)."""
        groups: dict[float, list[TaskId]] = {}
        for task_id, when in self.ready_at().items():
            groups.setdefault(when, []).append(task_id)
        size = max(len(ids) for ids in groups.values())
        return frozenset(groups[min(w for w, ids in groups.items() if len(ids) == size)])

    def burst_s(self, task_ids: Iterable[TaskId]) -> float:
        """From the first of `task_ids` becoming ready to the last of them starting."""
        ids = tuple(task_ids)
        ready = self.ready_at()
        return max(self.start[t] for t in ids) - min(ready[t] for t in ids)


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (`q` in 0..1) of a non-empty sequence."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]
