"""Benchmark DAGs with fixed seeds: tasks in dependency order, each with a latency to sleep.

Latencies are lognormal (heavy-tailed, like LLM calls) and scaled so the critical path takes a
chosen number of seconds; the shapes, not the scale, are what the ratios measure.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from orchestrator.models import Plan, TaskId, TaskSpec

from .bounds import critical_path

_SIGMA = 1.0
"""Lognormal shape: the slowest of 500 draws is ~20x the median, as with real model calls."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchTask:
    """One fake task: it waits `latency_s` once all of `deps` have finished."""

    id: TaskId
    deps: tuple[TaskId, ...]
    latency_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    """A named DAG; `tasks` lists every task after its dependencies."""

    name: str
    description: str
    tasks: tuple[BenchTask, ...]

    def latencies(self) -> dict[TaskId, float]:
        return {t.id: t.latency_s for t in self.tasks}

    def deps(self) -> dict[TaskId, tuple[TaskId, ...]]:
        return {t.id: t.deps for t in self.tasks}

    def with_latencies(self, latency: Callable[[BenchTask], float]) -> Workload:
        """The same DAG with each latency replaced by `latency(task)`."""
        tasks = tuple(replace(t, latency_s=latency(t)) for t in self.tasks)
        return replace(self, tasks=tasks)

    def zero_latency(self) -> Workload:
        return self.with_latencies(lambda _: 0.0)

    def to_plan(self) -> Plan:
        """The plan the engine would get, with exact latency estimates (critical-path-first)."""
        specs = tuple(
            TaskSpec(id=t.id, instruction=f"run {t.id}", deps=t.deps, est_latency_s=t.latency_s)
            for t in self.tasks
        )
        return Plan(goal=self.name, tasks=specs)


def scaled_to(workload: Workload, critical_path_s: float) -> Workload:
    """Scale every latency by one factor so the critical path lasts `critical_path_s`."""
    factor = critical_path_s / critical_path(workload.deps(), workload.latencies())
    return workload.with_latencies(lambda t: t.latency_s * factor)


def _draw(rng: random.Random) -> float:
    return rng.lognormvariate(0.0, _SIGMA)


def _tid(prefix: str, index: int) -> TaskId:
    return TaskId(f"{prefix}{index:05d}")


def layered(*, layers: int = 25, width: int = 40, seed: int = 1) -> Workload:
    """`layers` x `width` tasks; each needs 1-3 tasks of the layer above, sometimes an older one."""
    rng = random.Random(seed)
    tasks: list[BenchTask] = []
    previous: list[TaskId] = []
    for layer in range(layers):
        current = [_tid(f"l{layer:02d}_", i) for i in range(width)]
        for tid in current:
            deps: list[TaskId] = []
            if previous:
                deps = rng.sample(previous, min(len(previous), rng.randint(1, 3)))
                if layer >= 2 and rng.random() < 0.2:
                    older = tasks[rng.randrange(0, len(tasks) - len(previous))].id
                    deps.append(older)
            tasks.append(BenchTask(id=tid, deps=tuple(dict.fromkeys(deps)), latency_s=_draw(rng)))
        previous = current
    return Workload(
        name=f"layered_{layers * width}",
        description=f"{layers} layers x {width}, lognormal latencies",
        tasks=tuple(tasks),
    )


def fan_out(*, width: int = 500, seed: int = 2) -> Workload:
    """One root, `width` independent tasks that need it, one sink that needs them all."""
    rng = random.Random(seed)
    root = BenchTask(id=TaskId("root"), deps=(), latency_s=1.0)
    middle = [
        BenchTask(id=_tid("m", i), deps=(root.id,), latency_s=_draw(rng)) for i in range(width)
    ]
    sink = BenchTask(id=TaskId("sink"), deps=tuple(t.id for t in middle), latency_s=1.0)
    return Workload(
        name=f"fanout_{width}",
        description=f"1 -> {width} -> 1, lognormal latencies",
        tasks=(root, *middle, sink),
    )


def chain(*, length: int = 200, seed: int = 3) -> Workload:
    """`length` tasks, each needing the one before."""
    rng = random.Random(seed)
    tasks = [
        BenchTask(id=_tid("c", i), deps=(_tid("c", i - 1),) if i else (), latency_s=_draw(rng))
        for i in range(length)
    ]
    return Workload(
        name=f"chain_{length}", description=f"a chain of {length}", tasks=tuple(tasks)
    )


def random_dag(*, size: int = 10_000, window: int = 300, seed: int = 4) -> Workload:
    """Each task needs 0-3 tasks drawn from the `window` tasks before it (about 2% are roots)."""
    rng = random.Random(seed)
    tasks: list[BenchTask] = []
    for i in range(size):
        count = 0 if rng.random() < 0.02 else rng.randint(1, 3)
        pool = range(max(0, i - window), i)
        picks = rng.sample(pool, min(count, len(pool)))
        deps = tuple(tasks[j].id for j in sorted(picks))
        tasks.append(BenchTask(id=_tid("r", i), deps=deps, latency_s=_draw(rng)))
    return Workload(
        name=f"random_{size}",
        description=f"random DAG, deps from the previous {window}",
        tasks=tuple(tasks),
    )


CRITICAL_PATH_S: Mapping[str, float] = {
    "layered": 1.5,
    "fanout": 1.0,
    "chain": 2.0,
    "random": 1.5,
}
"""Seconds of critical path per workload family in a full run (`--quick` divides them by 4)."""


def standard(*, quick: bool = False) -> tuple[Workload, ...]:
    """The four workloads of issue 5, scaled so each run takes seconds."""
    shrink = 4.0 if quick else 1.0
    shapes = (
        ("layered", layered()),
        ("fanout", fan_out()),
        ("chain", chain()),
        ("random", random_dag()),
    )
    return tuple(scaled_to(w, CRITICAL_PATH_S[family] / shrink) for family, w in shapes)


def tiny() -> tuple[Workload, ...]:
    """Small versions of every shape, for the smoke test."""
    shapes = (
        layered(layers=4, width=5),
        fan_out(width=20),
        chain(length=10),
        random_dag(size=60, window=10),
    )
    return tuple(scaled_to(w, 0.05) for w in shapes)
