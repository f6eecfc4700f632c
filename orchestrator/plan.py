"""Building and validating the task DAG. The only module that imports networkx; pure."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from dataclasses import replace as _replace_fields
from typing import cast

import networkx as nx

from .errors import PlanValidationError
from .models import Plan, TaskId, TaskSpec


def task_key(task: TaskSpec) -> str:
    """What makes two tasks "the same" across runs for latency history: instruction and tools."""
    text = " ".join(task.instruction.split()).casefold()
    return hashlib.sha256("\x1f".join((text, *sorted(task.tools))).encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Estimates:
    """A task's latency estimate: its own hint, else what earlier runs took, else a default.

    Estimates only order ready tasks (longest remaining path first); they never gate anything.
    """

    history: Mapping[str, float] = field(default_factory=lambda: {})
    """Seconds by `task_key`, learned from earlier runs (`RunStore.latency_history`)."""
    default_s: float = 1.0

    def of(self, task: TaskSpec) -> float:
        if task.est_latency_s is not None:
            return task.est_latency_s
        if not self.history:
            return self.default_s
        return self.history.get(task_key(task), self.default_s)


_NO_HISTORY = Estimates()


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanGraph:
    """A validated plan: acyclic, every dependency known, every tool registered."""

    plan: Plan
    tasks: Mapping[TaskId, TaskSpec]
    order: tuple[TaskId, ...]
    """A topological order (dependencies first)."""
    dependents: Mapping[TaskId, tuple[TaskId, ...]]
    priority: Mapping[TaskId, float]
    """Length of the longest path from the task to a sink, its own estimate included.

    Estimates come from `TaskSpec.est_latency_s`, else from history, else a default (`Estimates`),
    so without any estimates this is the hop count and ordering by it is still critical-path-first.
    """

    @property
    def edges(self) -> tuple[tuple[TaskId, TaskId], ...]:
        return tuple((dep, t.id) for t in self.plan.tasks for dep in t.deps)

    def critical_path_s(self) -> float:
        """The longest path through the DAG by the same estimates as `priority`."""
        return max(self.priority.values(), default=0.0)


def validate_plan(
    plan: Plan,
    *,
    known_tools: Iterable[str] | None = None,
    known_tiers: Iterable[str] | None = None,
    estimates: Estimates = _NO_HISTORY,
) -> PlanGraph:
    """Check a plan and build its graph.

    Raises:
        PlanValidationError: empty plan, duplicate or blank ids, unknown dependencies, unknown
            tools or tiers, or a cycle; the message is written for the planner to repair it.
    """
    if not plan.tasks:
        raise PlanValidationError("the plan has no tasks; give at least one task")
    _check_ids(plan.tasks)
    ids = {t.id for t in plan.tasks}
    _check_references(plan.tasks, ids, known_tools, known_tiers)
    graph: nx.DiGraph[TaskId] = nx.DiGraph()
    graph.add_nodes_from(t.id for t in plan.tasks)
    graph.add_edges_from((dep, t.id) for t in plan.tasks for dep in t.deps)
    if not nx.is_directed_acyclic_graph(graph):
        found = nx.find_cycle(graph)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        cycle = tuple(edge[0] for edge in cast("list[tuple[TaskId, TaskId]]", found))
        raise PlanValidationError(
            f"dependency cycle: {' -> '.join((*cycle, cycle[0]))}; "
            "remove one of these dependencies",
            task_ids=cycle,
            cycle=cycle,
        )
    order = tuple(nx.topological_sort(graph))
    tasks = {t.id: t for t in plan.tasks}
    dependents = {tid: tuple(graph.successors(tid)) for tid in order}
    return PlanGraph(
        plan=plan,
        tasks=tasks,
        order=order,
        dependents=dependents,
        priority=_longest_remaining(order, tasks, dependents, estimates),
    )


def _check_ids(tasks: tuple[TaskSpec, ...]) -> None:
    blank = [t.id for t in tasks if not t.id.strip()]
    if blank:
        raise PlanValidationError("every task needs a non-empty id", task_ids=blank)
    dupes = sorted(tid for tid, n in Counter(t.id for t in tasks).items() if n > 1)
    if dupes:
        raise PlanValidationError(
            f"duplicate task ids: {', '.join(dupes)}; every id must be unique", task_ids=dupes
        )
    empty = [t.id for t in tasks if not t.instruction.strip()]
    if empty:
        raise PlanValidationError(
            f"tasks without an instruction: {', '.join(empty)}", task_ids=empty
        )


def _check_references(
    tasks: tuple[TaskSpec, ...],
    ids: set[TaskId],
    known_tools: Iterable[str] | None,
    known_tiers: Iterable[str] | None,
) -> None:
    problems: list[str] = []
    bad: list[str] = []
    tools = None if known_tools is None else frozenset(known_tools)
    tiers = None if known_tiers is None else frozenset(known_tiers)
    for task in tasks:
        if task.id in task.deps:
            problems.append(f"{task.id} depends on itself")
            bad.append(task.id)
        if unknown := [d for d in task.deps if d not in ids]:
            problems.append(f"{task.id} depends on unknown tasks {', '.join(unknown)}")
            bad.append(task.id)
        if tools is not None and (unknown := [n for n in task.tools if n not in tools]):
            known = ", ".join(sorted(tools)) or "none"
            problems.append(f"{task.id} uses unknown tools {', '.join(unknown)} (known: {known})")
            bad.append(task.id)
        if tiers is not None and task.tier_hint is not None and task.tier_hint not in tiers:
            problems.append(f"{task.id} names unknown tier {task.tier_hint!r}")
            bad.append(task.id)
    if problems:
        raise PlanValidationError("; ".join(problems), task_ids=sorted(set(bad)))


def _longest_remaining(
    order: tuple[TaskId, ...],
    tasks: Mapping[TaskId, TaskSpec],
    dependents: Mapping[TaskId, tuple[TaskId, ...]],
    estimates: Estimates,
) -> dict[TaskId, float]:
    rank: dict[TaskId, float] = {}
    for tid in reversed(order):
        rank[tid] = estimates.of(tasks[tid]) + max((rank[d] for d in dependents[tid]), default=0.0)
    return rank


def replan(
    graph: PlanGraph,
    *,
    replace: TaskId | None,
    add: tuple[TaskSpec, ...],
    known_tools: Iterable[str] | None = None,
    known_tiers: Iterable[str] | None = None,
    estimates: Estimates = _NO_HISTORY,
) -> PlanGraph:
    """Replace one task by a sub-graph (or just add tasks) and revalidate.

    Tasks that depended on the replaced one now depend on every added task that no other added
    task depends on (the sub-graph's sinks), so downstream work waits for the replacement.

    Raises:
        PlanValidationError: the edited graph is invalid (nothing is changed).
    """
    if replace is not None and replace not in graph.tasks:
        raise PlanValidationError(f"cannot replace unknown task {replace}", task_ids=[replace])
    if not add and replace is None:
        raise PlanValidationError("a replan must replace a task or add tasks")
    added_ids = {t.id for t in add}
    depended_on = {d for t in add for d in t.deps}
    sinks = tuple(t.id for t in add if t.id not in depended_on)
    kept: list[TaskSpec] = []
    for task in graph.plan.tasks:
        if task.id == replace:
            continue
        if replace is not None and replace in task.deps:
            deps = tuple(d for d in task.deps if d != replace) + sinks
            task = _replace_fields(task, deps=tuple(dict.fromkeys(deps)))
        kept.append(task)
    if replace is not None and any(replace in t.deps for t in add):
        raise PlanValidationError(
            f"added tasks cannot depend on {replace}, the task they replace",
            task_ids=sorted(t.id for t in add if replace in t.deps),
        )
    clash = sorted(added_ids & {t.id for t in kept})
    if clash:
        raise PlanValidationError(
            f"added task ids already exist: {', '.join(clash)}", task_ids=clash
        )
    new_plan = Plan(goal=graph.plan.goal, tasks=(*kept, *add), rationale=graph.plan.rationale)
    return validate_plan(
        new_plan,
        known_tools=known_tools,
        known_tiers=known_tiers,
        estimates=estimates,
    )


def empty_graph(goal: str) -> PlanGraph:
    """The graph before a streamed plan's first task has arrived."""
    return PlanGraph(plan=Plan(goal=goal, tasks=()), tasks={}, order=(), dependents={}, priority={})


def extend_graph(
    graph: PlanGraph,
    task: TaskSpec,
    *,
    known_tools: Iterable[str] | None = None,
    known_tiers: Iterable[str] | None = None,
    estimates: Estimates = _NO_HISTORY,
) -> PlanGraph:
    """Add one streamed task whose dependencies are all already in the graph (so no cycle can form).

    Raises:
        PlanValidationError: the task is invalid on its own or names a dependency not seen yet.
    """
    if task.id in graph.tasks:
        raise PlanValidationError(f"duplicate task ids: {task.id}", task_ids=[task.id])
    _check_ids((task,))
    _check_references((task,), set(graph.tasks), known_tools, known_tiers)
    est = estimates.of(task)
    dependents = {**graph.dependents, task.id: ()}
    for dep in task.deps:
        dependents[dep] = (*dependents[dep], task.id)
    return PlanGraph(
        plan=Plan(
            goal=graph.plan.goal, tasks=(*graph.plan.tasks, task), rationale=graph.plan.rationale
        ),
        tasks={**graph.tasks, task.id: task},
        order=(*graph.order, task.id),
        dependents=dependents,
        priority={**graph.priority, task.id: est},
    )
