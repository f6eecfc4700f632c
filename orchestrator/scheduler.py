"""Task states and the next ready set. Pure, synchronous and O(1) per transition.

States: pending → ready → running → reviewing → succeeded, with failed / skipped / replaced as the
other terminal states. A task becomes ready the moment its own dependencies have succeeded; there is
no level barrier. Among ready tasks the longest remaining path goes first (critical-path-first).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from .models import TaskId

TaskState = Literal[
    "pending", "ready", "running", "reviewing", "succeeded", "failed", "skipped", "replaced"
]
TERMINAL: frozenset[TaskState] = frozenset({"succeeded", "failed", "skipped", "replaced"})
_ALL_STATES: tuple[TaskState, ...] = (
    "pending",
    "ready",
    "running",
    "reviewing",
    "succeeded",
    "failed",
    "skipped",
    "replaced",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SkipNotice:
    """A task that will never run, and the failed task that blocked it."""

    task_id: TaskId
    blocked_by: TaskId


class Scheduler:
    """Dependency counting with a priority heap; the executor is its only caller."""

    __slots__ = (
        "_caps",
        "_counts",
        "_dependents",
        "_deps",
        "_heap",
        "_max_parallel",
        "_missing",
        "_priority",
        "_running",
        "_running_by_tier",
        "_seq",
        "_state",
        "_tier",
    )

    def __init__(
        self, *, max_parallel: int | None = None, tier_caps: Mapping[str, int] = {}
    ) -> None:
        self._max_parallel = max_parallel
        self._caps = dict(tier_caps)
        self._deps: dict[TaskId, tuple[TaskId, ...]] = {}
        self._dependents: dict[TaskId, list[TaskId]] = {}
        self._missing: dict[TaskId, int] = {}
        self._state: dict[TaskId, TaskState] = {}
        self._priority: dict[TaskId, float] = {}
        self._tier: dict[TaskId, str] = {}
        self._heap: list[tuple[float, int, TaskId]] = []
        self._seq = 0
        self._running = 0
        self._running_by_tier: dict[str, int] = {}
        self._counts: dict[TaskState, int] = dict.fromkeys(_ALL_STATES, 0)

    def _set(self, task_id: TaskId, state: TaskState) -> None:
        counts = self._counts
        old = self._state.get(task_id)
        if old is not None:
            counts[old] -= 1
        counts[state] += 1
        self._state[task_id] = state

    # -- building ---------------------------------------------------------------------------
    def add(
        self, task_id: TaskId, deps: Iterable[TaskId], *, priority: float = 0.0, tier: str = ""
    ) -> bool:
        """Add a task whose dependencies are already known; return whether it is ready now.

        Raises:
            ValueError: a duplicate id or an unknown dependency (the plan layer validates first).
        """
        if task_id in self._state:
            raise ValueError(f"task {task_id} already scheduled")
        deps = tuple(deps)
        for dep in deps:  # all checked before any is linked: a refused task leaves no edge
            if self._state.get(dep) in (None, "replaced"):
                raise ValueError(f"task {task_id} depends on unknown task {dep}")
        missing = 0
        for dep in deps:
            state = self._state[dep]
            self._dependents[dep].append(task_id)
            if state != "succeeded":
                missing += 1
        self._deps[task_id] = deps
        self._dependents[task_id] = []
        self._priority[task_id] = priority
        self._tier[task_id] = tier
        self._missing[task_id] = missing
        self._set(task_id, "pending")
        blocked = next((d for d in deps if self._state[d] in ("failed", "skipped")), None)
        if blocked is not None:
            self._set(task_id, "skipped")
            return False
        if missing == 0:
            self._push(task_id)
            return True
        return False

    def set_priority(self, task_id: TaskId, priority: float) -> None:
        """Update a priority (e.g. once the whole streamed plan is known); ready heap is lazy."""
        self._priority[task_id] = priority
        if self._state[task_id] == "ready":
            self._seq += 1
            heapq.heappush(self._heap, (-priority, self._seq, task_id))

    def _push(self, task_id: TaskId) -> None:
        self._set(task_id, "ready")
        self._seq += 1
        heapq.heappush(self._heap, (-self._priority[task_id], self._seq, task_id))

    # -- dispatch ---------------------------------------------------------------------------
    def next_batch(self, limit: int | None = None) -> list[TaskId]:
        """Pop ready tasks under the caps, at most `limit`, best priority first, as running.

        The rest stay ready, so a task that becomes ready later still goes by priority.
        """
        batch: list[TaskId] = []
        deferred: list[tuple[float, int, TaskId]] = []
        heap = self._heap
        room = len(heap) if limit is None else limit
        while (
            heap
            and len(batch) < room
            and (self._max_parallel is None or self._running < self._max_parallel)
        ):
            item = heapq.heappop(heap)
            task_id = item[2]
            if self._state[task_id] != "ready" or -item[0] != self._priority[task_id]:
                continue  # stale entry: started, removed or re-prioritised
            tier = self._tier[task_id]
            cap = self._caps.get(tier)
            if cap is not None and self._running_by_tier.get(tier, 0) >= cap:
                deferred.append(item)
                continue
            self._set(task_id, "running")
            self._running += 1
            self._running_by_tier[tier] = self._running_by_tier.get(tier, 0) + 1
            batch.append(task_id)
        for item in deferred:
            heapq.heappush(heap, item)
        return batch

    def attempt_finished(self, task_id: TaskId) -> None:
        """The attempt's slot is free; the task waits for its verdict in `reviewing`."""
        self._expect(task_id, "running")
        self._release(task_id)
        self._set(task_id, "reviewing")

    def _release(self, task_id: TaskId) -> None:
        self._running -= 1
        self._running_by_tier[self._tier[task_id]] -= 1

    # -- verdicts ---------------------------------------------------------------------------
    def succeed(self, task_id: TaskId) -> list[TaskId]:
        """Mark a task succeeded; return the dependents that just became ready."""
        state = self._state[task_id]
        if state == "running":
            self._release(task_id)
        elif state != "reviewing":
            raise ValueError(f"task {task_id} cannot succeed from {state}")
        self._set(task_id, "succeeded")
        ready: list[TaskId] = []
        missing = self._missing
        for dep in self._dependents[task_id]:
            missing[dep] -= 1
            if missing[dep] == 0 and self._state[dep] == "pending":
                self._push(dep)
                ready.append(dep)
        return ready

    def succeed_reused(self, task_id: TaskId) -> list[TaskId]:
        """Mark a ready task succeeded without running it (its result is reused from before)."""
        self._expect(task_id, "ready")
        self._running += 1
        self._running_by_tier[self._tier[task_id]] = (
            self._running_by_tier.get(self._tier[task_id], 0) + 1
        )
        self._set(task_id, "running")
        return self.succeed(task_id)

    def resume_review(self, task_id: TaskId) -> None:
        """A ready task whose earlier attempt already finished goes straight to `reviewing`."""
        self._expect(task_id, "ready")
        self._set(task_id, "reviewing")

    def retry(self, task_id: TaskId, *, tier: str | None = None) -> None:
        """Send a task back to the ready set, optionally at another tier."""
        state = self._state[task_id]
        if state == "running":
            self._release(task_id)
        elif state != "reviewing":
            raise ValueError(f"task {task_id} cannot be retried from {state}")
        if tier is not None:
            self._tier[task_id] = tier
        self._push(task_id)

    def fail(self, task_id: TaskId) -> list[SkipNotice]:
        """Mark a task failed for good; skip every transitive dependent and return them."""
        state = self._state[task_id]
        if state == "running":
            self._release(task_id)
        elif state not in ("reviewing", "ready", "pending"):
            raise ValueError(f"task {task_id} cannot fail from {state}")
        self._set(task_id, "failed")
        return self._skip_dependents(task_id)

    def _skip_dependents(self, root: TaskId) -> list[SkipNotice]:
        notices: list[SkipNotice] = []
        stack = [root]
        while stack:
            for dep in self._dependents[stack.pop()]:
                if self._state[dep] in ("pending", "ready"):
                    self._set(dep, "skipped")
                    notices.append(SkipNotice(task_id=dep, blocked_by=root))
                    stack.append(dep)
        return notices

    def replace(self, task_id: TaskId) -> None:
        """Take a not-running task out of the graph; its dependents are rewired by `rewire`."""
        state = self._state[task_id]
        if state not in ("pending", "ready", "reviewing", "succeeded"):
            raise ValueError(f"task {task_id} cannot be replaced from {state}")
        self._set(task_id, "replaced")
        for dep in self._deps[task_id]:
            self._dependents[dep].remove(task_id)

    def rewire(self, task_id: TaskId, deps: Iterable[TaskId]) -> list[SkipNotice]:
        """Give a pending or ready task new dependencies (after a replan); return tasks skipped."""
        state = self._state[task_id]
        if state not in ("pending", "ready"):
            raise ValueError(f"task {task_id} cannot be rewired from {state}")
        deps = tuple(deps)
        for dep in deps:
            if self._state.get(dep) in (None, "replaced"):
                raise ValueError(f"task {task_id} depends on unknown task {dep}")
        for old in self._deps[task_id]:
            self._dependents[old].remove(task_id)
        for dep in deps:
            self._dependents[dep].append(task_id)
        self._deps[task_id] = deps
        self._missing[task_id] = sum(1 for d in deps if self._state[d] != "succeeded")
        blocked = next((d for d in deps if self._state[d] in ("failed", "skipped")), None)
        if blocked is not None:
            self._set(task_id, "skipped")
            return [
                SkipNotice(task_id=task_id, blocked_by=blocked),
                *self._skip_dependents(task_id),
            ]
        if self._missing[task_id] == 0:
            if state != "ready":
                self._push(task_id)
        else:
            self._set(task_id, "pending")
        return []

    def cancel_pending(self) -> list[TaskId]:
        """Mark every not-started task skipped (run cancelled or aborted); return them."""
        cancelled = [t for t, s in self._state.items() if s in ("pending", "ready")]
        for task_id in cancelled:
            self._set(task_id, "skipped")
        self._heap.clear()
        return cancelled

    # -- queries ----------------------------------------------------------------------------
    def state(self, task_id: TaskId) -> TaskState:
        return self._state[task_id]

    def tier(self, task_id: TaskId) -> str:
        return self._tier[task_id]

    def states(self) -> Mapping[TaskId, TaskState]:
        return self._state

    @property
    def running(self) -> int:
        return self._running

    @property
    def max_parallel(self) -> int | None:
        return self._max_parallel

    def fan_out(self, task_id: TaskId) -> int:
        """How many tasks wait on this one: the widest burst its success can start."""
        return len(self._dependents[task_id])

    def is_finished(self) -> bool:
        """Nothing is ready, running or under review; pending tasks then can never start."""
        c = self._counts
        return c["ready"] == 0 and c["running"] == 0 and c["reviewing"] == 0

    def count(self, state: TaskState) -> int:
        return self._counts[state]

    def _expect(self, task_id: TaskId, state: TaskState) -> None:
        if self._state[task_id] != state:
            raise ValueError(f"task {task_id} is {self._state[task_id]}, expected {state}")
