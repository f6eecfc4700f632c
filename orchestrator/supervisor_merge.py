"""The supervisor's merge side: an accepted writing task's copy goes into the main tree, in
acceptance order; a real conflict becomes a resolve task its dependents wait for.

The merge is journaled before it writes (`merge_started`, with the copy's commit) and after
(`workspace_merged`), so a resumed run merges a copy that was in flight again, which changes
nothing the second time, and never loses one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio

from .attempts import MergeDone, MergeReady, Message
from .events import MergeStarted, PlanValidated, TaskPlanned, WorkspaceMerged
from .models import TaskId, TaskSpec
from .plan import PlanGraph, extend_graph, validate_plan

if TYPE_CHECKING:
    from .supervisor import Supervisor
    from .workspaces import Conflict, MergeOutcome

_SIDE_CHARS = 6_000
"""Per side of a conflicted file, how much the resolve task is shown (the rest it can read)."""


class Merges:
    """Serializes merges in the order tasks were accepted."""

    def __init__(self, sup: Supervisor) -> None:
        self._sup = sup
        self._lock = anyio.Lock()

    def start(self, tid: TaskId) -> None:
        """Merge `tid`'s copy: commit it now, or take the journaled commit (a resumed run)."""
        sup = self._sup
        ws = sup.setup.workspaces
        assert ws is not None
        recorded = sup.record(tid).merge
        lock = self._lock

        async def merge(post: Callable[[Message], None]) -> Message:
            async with lock:  # FIFO: acceptance order
                if recorded is not None:
                    done, base = recorded
                else:
                    base = ws.base_of(tid) or ""
                    done = await ws.commit(tid)
                    post(MergeReady(task_id=tid, commit=done, base=base))
                outcome = await ws.merge(tid, done, base=base)
                await ws.remove(tid)
            return MergeDone(task_id=tid, outcome=outcome)

        sup.dispatcher.spawn(merge)

    def ready(self, msg: MergeReady) -> None:
        """Journal the merge before it writes the main tree."""
        sup = self._sup
        sup.emit(
            MergeStarted(
                run_id=sup.setup.run_id,
                at=sup.now(),
                task_id=msg.task_id,
                commit=msg.commit,
                base=msg.base,
            )
        )
        sup.setup.commit_journal()

    def done(self, msg: MergeDone) -> None:
        """Record the merge; a conflict adds a resolve task first, so dependents wait for it."""
        sup = self._sup
        tid, outcome = msg.task_id, msg.outcome
        resolve: TaskId | None = None
        rewired: dict[TaskId, tuple[TaskId, ...]] = {}
        if outcome.conflicts:
            resolve, rewired = self._plan_resolve(tid, outcome)
        sup.emit(
            WorkspaceMerged(
                run_id=sup.setup.run_id,
                at=sup.now(),
                task_id=tid,
                commit=outcome.commit,
                merged=outcome.merged,
                conflicts=tuple(c.path for c in outcome.conflicts),
                resolve=resolve,
                rewired=rewired,
            )
        )
        if resolve is not None:
            sup.emit(
                PlanValidated(
                    run_id=sup.setup.run_id,
                    at=sup.now(),
                    task_ids=sup.graph.order,
                    edges=sup.graph.edges,
                    replan=True,
                )
            )
            sup.add_tasks([resolve])
            for dependent, deps in rewired.items():
                for notice in sup.scheduler.rewire(dependent, deps):
                    sup.skip(notice.task_id, notice.blocked_by)
        sup.accept_now(tid)

    def _plan_resolve(
        self, tid: TaskId, outcome: MergeOutcome
    ) -> tuple[TaskId, dict[TaskId, tuple[TaskId, ...]]]:
        """A task, one tier up, that writes the conflicted files; `tid`'s pending dependents
        now also depend on it."""
        sup = self._sup
        rec = sup.record(tid)
        n = 1
        while TaskId(f"{tid}-resolve{n}") in sup.graph.tasks:
            n += 1
        rid = TaskId(f"{tid}-resolve{n}")
        ladder = [t.name for t in sup.setup.ladder]
        up = ladder[min(sup.setup.tier_index(rec.tier) + 1, len(ladder) - 1)]
        tools = tuple(t for t in ("read_file", "list_dir", "apply_patch") if t in sup.setup.tools)
        spec = TaskSpec(
            id=rid,
            instruction=_resolve_instruction(rec.spec, outcome.conflicts),
            tools=tools,
            produces="the conflicted files merged: both changes kept where they are compatible",
            tier_hint=up,
        )
        sup.graph = extend_graph(
            sup.graph,
            spec,
            known_tools=sup.setup.tools.keys(),
            known_tiers=ladder,
            estimates=sup.setup.estimates,
        )
        sup.emit(TaskPlanned(run_id=sup.setup.run_id, at=sup.now(), spec=spec, tier=up))
        rewired: dict[TaskId, tuple[TaskId, ...]] = {}
        for dependent in sup.graph.dependents.get(tid, ()):
            if dependent != rid and sup.scheduler.state(dependent) in ("pending", "ready"):
                rewired[dependent] = (*sup.graph.tasks[dependent].deps, rid)
        for dependent, deps in rewired.items():
            new = dataclasses.replace(sup.graph.tasks[dependent], deps=deps)
            sup.graph = _with_task(sup, new)
        return rid, rewired


def _with_task(sup: Supervisor, spec: TaskSpec) -> PlanGraph:
    tasks = tuple(spec if t.id == spec.id else t for t in sup.graph.plan.tasks)
    return validate_plan(
        dataclasses.replace(sup.graph.plan, tasks=tasks),
        known_tools=sup.setup.tools.keys(),
        known_tiers=[t.name for t in sup.setup.ladder],
        estimates=sup.setup.estimates,
    )


def _resolve_instruction(task: TaskSpec, conflicts: tuple[Conflict, ...]) -> str:
    parts = [
        f"Task {task.id} was accepted, but its changes to {len(conflicts)} file(s) conflict with "
        "changes another task made meanwhile. Its other changes are already merged. Edit each "
        "file below with apply_patch so that it keeps BOTH changes (the main tree's current "
        f"content plus what {task.id} intended). {task.id}'s instruction was: "
        f"{task.instruction}",
    ]
    for c in conflicts:
        parts.append(
            f"\n### {c.path}\n--- base (before both) ---\n{_side(c.base)}\n"
            f"--- main tree now (keep this) ---\n{_side(c.ours)}\n"
            f"--- {task.id}'s version (bring its change in) ---\n{_side(c.theirs)}"
        )
    return "\n".join(parts)


def _side(text: str | None) -> str:
    if text is None:
        return "(absent)"
    if len(text) > _SIDE_CHARS:
        return text[:_SIDE_CHARS] + f"\n[... {len(text) - _SIDE_CHARS} more characters: read it]"
    return text
