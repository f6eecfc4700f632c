"""Per-task overhead of the whole engine: `Orchestrator(...).run(goal)` with an instant model.

Run with: `python -m bench.engine_overhead` (independent and layered plans of 200 and 1,000 tasks,
review "all" and "none", median of 5 repetitions) or `--quick` (1 repetition, 200 tasks).
Every model call is answered at once by a `ScriptedModel`: the planner streams a plan of N tasks,
each worker reports "done" without a tool call, the reviewer accepts every task it is shown and
the synthesizer writes one line. What is left is the engine's own cost: wall time and process CPU
per task. Writes a section named by `--label` into `bench/results/engine_overhead.md` (a section
of the same label is replaced, others are kept: before / after side by side).

This module imports nothing of the repository but `orchestrator`, so it measures whichever
checkout comes first on the path: `PYTHONPATH=/other/checkout python -m bench.engine_overhead`.
The distribution maps the checkout's `agents/` and `tools/` folders to `orchestrator.agents` and
`orchestrator.tools`; an editable install would fetch those two from the installed checkout
whatever the path says, so `_pin_checkout` maps them to the folders beside the `orchestrator`
that is imported (the header of every section names the three files).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from time import perf_counter, process_time
from types import ModuleType
from typing import Literal


class _CheckoutFinder(importlib.abc.MetaPathFinder):
    """Finds `orchestrator.agents` and `orchestrator.tools` in one checkout's folders."""

    def __init__(self, packages: dict[str, Path]) -> None:
        self._packages = packages

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        """The package's spec when it is one of ours, else None (the next finder decides)."""
        folder = self._packages.get(fullname)
        if folder is None:
            return None
        return importlib.util.spec_from_file_location(
            fullname, folder / "__init__.py", submodule_search_locations=[str(folder)]
        )


def _pin_checkout() -> Path | None:
    """Make `orchestrator.agents` / `.tools` come from the checkout `orchestrator` comes from.

    Returns the checkout's root, or None when `orchestrator` is an installed (non-checkout) copy.
    """
    spec = importlib.util.find_spec("orchestrator")
    if spec is None or spec.origin is None:
        return None
    root = Path(spec.origin).resolve().parent.parent
    packages = {
        f"orchestrator.{name}": root / name
        for name in ("agents", "tools")
        if (root / name / "__init__.py").is_file()
    }
    if not packages:
        return None
    for name, folder in packages.items():
        loaded = sys.modules.get(name)
        if loaded is not None and Path(str(loaded.__file__)).resolve().parent != folder:
            raise RuntimeError(f"{name} was imported from {loaded.__file__} before the pin")
    sys.meta_path.insert(0, _CheckoutFinder(packages))
    return root


_CHECKOUT = _pin_checkout()

import anyio  # noqa: E402 - after the pin, like every import that may load orchestrator

import orchestrator  # noqa: E402
from orchestrator import Orchestrator, Settings  # noqa: E402
from orchestrator.agents.planner import PlanOut  # noqa: E402
from orchestrator.agents.reviewer import ReviewOut, VerdictOut  # noqa: E402
from orchestrator.agents.schemas import TaskOut  # noqa: E402
from orchestrator.agents.worker import LeafReportOut  # noqa: E402
from orchestrator.llm import ModelReply, ModelRequest  # noqa: E402
from orchestrator.testing import ScriptedModel  # noqa: E402

RESULTS = Path(__file__).parent / "results"
Shape = Literal["independent", "layered"]
Review = Literal["all", "none"]
SHAPES: tuple[Shape, ...] = ("independent", "layered")
REVIEWS: tuple[Review, ...] = ("all", "none")
LAYER_WIDTH = 20
"""Tasks per layer of the layered plan; each needs 2 tasks of the layer above."""
GOAL = "Summarise every part of the input and report the key facts of each."
_UNDER_REVIEW = re.compile(r"^### (\S+) \(tier ", re.MULTILINE)
"""How the reviewer's prompt heads each task under review."""


class BenchCheckError(Exception):
    """A run did not do what the bench needs (every task run once, succeeded, reviewed)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    """One timed run of the engine."""

    wall_s: float
    cpu_s: float
    model_calls: int
    review_calls: int
    responder_s: float
    """Time spent in this bench's responders (building replies), inside `wall_s`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Cell:
    """Every repetition of one shape x size x review."""

    shape: Shape
    tasks: int
    review: Review
    samples: tuple[Sample, ...]

    @property
    def wall_us(self) -> float:
        """Median wall time per task, microseconds."""
        return statistics.median(s.wall_s for s in self.samples) / self.tasks * 1e6

    @property
    def cpu_us(self) -> float:
        """Median process CPU time per task, microseconds."""
        return statistics.median(s.cpu_s for s in self.samples) / self.tasks * 1e6

    @property
    def best_wall_us(self) -> float:
        """The fastest repetition's wall time per task: the least disturbed by other load."""
        return min(s.wall_s for s in self.samples) / self.tasks * 1e6

    @property
    def spread(self) -> float:
        """(max - min) / median of the wall times: how noisy the cell was."""
        walls = [s.wall_s for s in self.samples]
        return (max(walls) - min(walls)) / statistics.median(walls)


@dataclass(frozen=True, slots=True, kw_only=True)
class CoreCell:
    """The scheduler and dispatch loop alone, on the same DAG, with instant tasks."""

    shape: Shape
    tasks: int
    wall_us: float
    cpu_us: float


def plan_reply(shape: Shape, n: int) -> PlanOut:
    """A plan of `n` tasks: all independent, or layers of `LAYER_WIDTH` needing 2 above each."""
    tasks: list[TaskOut] = []
    for i in range(n):
        layer, slot = divmod(i, LAYER_WIDTH)
        if shape == "independent" or layer == 0:
            deps: list[str] = []
        else:
            above = (layer - 1) * LAYER_WIDTH
            deps = [_tid(shape, above + slot), _tid(shape, above + (slot + 1) % LAYER_WIDTH)]
        tasks.append(
            TaskOut(
                id=_tid(shape, i),
                instruction=f"Summarise part {i} of the input and list its key facts.",
                deps=deps,
                tools=[],
                produces=f"the key facts of part {i}",
                check_command=None,
                tier=None,
                est_seconds=None,
            )
        )
    return PlanOut(rationale="One task per part; parts are independent.", tasks=tasks)


def _tid(shape: Shape, i: int) -> str:
    return f"part_{i:04d}" if shape == "independent" else f"l{i // LAYER_WIDTH:02d}_{i:04d}"


class Responders:
    """The worker, reviewer and synthesizer replies, timed so their cost can be told apart."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.reviews = 0
        self._done = LeafReportOut(
            status="done", summary="done", outputs=[], confidence=0.9
        ).model_dump_json()

    def worker(self, request: ModelRequest) -> ModelReply:
        """Report "done" at once, without a tool call."""
        begin = perf_counter()
        reply = ModelReply(text=self._done)
        self.seconds += perf_counter() - begin
        return reply

    def reviewer(self, request: ModelRequest) -> ModelReply:
        """Accept every task under review, by name (the reviewer asks again about left-out ones)."""
        begin = perf_counter()
        self.reviews += 1
        text = "\n".join(m.content for m in request.messages if m.role == "user")
        verdicts = [
            VerdictOut(task_id=tid, verdict="accept", feedback="", new_tasks=None)
            for tid in _UNDER_REVIEW.findall(text)
        ]
        reply = ModelReply(text=ReviewOut(verdicts=verdicts).model_dump_json())
        self.seconds += perf_counter() - begin
        return reply

    def synthesizer(self, request: ModelRequest) -> ModelReply:
        """A one-line answer."""
        return ModelReply(text="Every part is summarised.")


async def run_once(plan: PlanOut, review: Review) -> Sample:
    """One goal through `Orchestrator.run` in a fresh temp dir; checks that every task succeeded.

    Raises:
        BenchCheckError: the run did not complete, a task did not succeed, or a task's worker was
            called other than once.
    """
    responders = Responders()
    model = (
        ScriptedModel()
        .script("planner", plan)
        .respond("worker", responders.worker)
        .respond("reviewer", responders.reviewer)
        .respond("synthesizer", responders.synthesizer)
    )
    with tempfile.TemporaryDirectory(prefix="engine_overhead_") as tmp:
        app = Orchestrator(
            client=model,
            workdir=tmp,
            settings=Settings(run_root=Path(tmp) / "runs"),
            builtin_tools=False,
            review=review,
        )
        gc.collect()
        cpu, wall = process_time(), perf_counter()
        result = await app.run(GOAL)
        wall, cpu = perf_counter() - wall, process_time() - cpu
    n = len(plan.tasks)
    kinds = [r.kind for r in result.results.values()]
    workers = len(model.calls_for("worker"))
    if result.status != "completed" or kinds.count("succeeded") != n or workers != n:
        raise BenchCheckError(
            f"{n} tasks, review {review}: status {result.status}, "
            f"{kinds.count('succeeded')} succeeded of {len(kinds)}, {workers} worker calls"
        )
    return Sample(
        wall_s=wall,
        cpu_s=cpu,
        model_calls=len(model.calls),
        review_calls=responders.reviews,
        responder_s=responders.seconds,
    )


def measure_all(args: argparse.Namespace, log: Callable[[str], None]) -> list[Cell]:
    """Every cell, `args.reps` times, one repetition of every cell per round (so a burst of load
    from elsewhere on the machine spreads over the cells instead of landing on one); each run on a
    fresh event loop."""
    sizes: list[int] = args.sizes
    keys: list[tuple[Shape, int, Review]] = [
        (shape, n, review) for shape in SHAPES for n in sizes for review in REVIEWS
    ]
    plans = {(shape, n): plan_reply(shape, n) for shape, n, _ in keys}
    samples: dict[tuple[Shape, int, Review], list[Sample]] = {key: [] for key in keys}
    for rep in range(args.reps):
        for shape, n, review in keys:
            samples[shape, n, review].append(anyio.run(run_once, plans[shape, n], review))
        log(f"round {rep + 1} of {args.reps} done")
    cells = [
        Cell(shape=shape, tasks=n, review=review, samples=tuple(samples[shape, n, review]))
        for shape, n, review in keys
    ]
    for c in cells:
        log(
            f"{c.shape:11} {c.tasks:>5} review {c.review:4}: {c.wall_us:8,.0f} µs wall "
            f"{c.cpu_us:8,.0f} µs CPU per task (spread {c.spread:.0%})"
        )
    return cells


def measure_core(shape: Shape, n: int, reps: int, max_parallel: int) -> CoreCell | str:
    """The core `Scheduler` + `Dispatcher` on the same DAG with instant tasks (as
    bench/run_orchestrator.py drives them); a reason string when this checkout's internals differ.
    """
    try:
        from orchestrator.executor import Dispatcher
        from orchestrator.models import TaskId
        from orchestrator.scheduler import Scheduler
    except ImportError as exc:  # pragma: no cover - an engine without these internals
        return f"n/a ({exc})"
    tasks = plan_reply(shape, n).tasks

    async def once() -> tuple[float, float]:
        scheduler = Scheduler(max_parallel=max_parallel)
        for t in tasks:
            scheduler.add(TaskId(t.id), [TaskId(d) for d in t.deps])

        async def start_task(task_id: TaskId) -> TaskId:
            await anyio.lowlevel.checkpoint()
            return task_id

        loop = Dispatcher(scheduler, start_task=start_task, on_message=scheduler.succeed)
        gc.collect()
        cpu, wall = process_time(), perf_counter()
        await loop.run()
        wall, cpu = perf_counter() - wall, process_time() - cpu
        if scheduler.count("succeeded") != n:
            raise BenchCheckError(f"core: {scheduler.count('succeeded')} of {n} succeeded")
        return wall, cpu

    try:
        runs = [anyio.run(once) for _ in range(reps)]
    except (TypeError, AttributeError, ValueError) as exc:  # internals changed shape
        return f"n/a ({type(exc).__name__}: {exc})"
    return CoreCell(
        shape=shape,
        tasks=n,
        wall_us=statistics.median(w for w, _ in runs) / n * 1e6,
        cpu_us=statistics.median(c for _, c in runs) / n * 1e6,
    )


def warm_up() -> None:
    """One small unmeasured run of each review mode: imports, pydantic schemas, first-call paths."""
    for review in REVIEWS:
        anyio.run(run_once, plan_reply("layered", 2 * LAYER_WIDTH), review)


def table(cells: Sequence[Cell]) -> str:
    """The markdown table of the medians."""
    lines = [
        "| shape | N | review | wall µs/task | CPU µs/task | best wall | wall spread "
        "| model calls | reviews |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cells:
        first = c.samples[0]
        lines.append(
            f"| {c.shape} | {c.tasks:,} | {c.review} | {c.wall_us:,.0f} | {c.cpu_us:,.0f} | "
            f"{c.best_wall_us:,.0f} | {c.spread:.0%} | {first.model_calls:,} | "
            f"{first.review_calls:,} |"
        )
    return "\n".join(lines)


def core_table(cores: Sequence[CoreCell | str]) -> str:
    """The scheduler-alone numbers, or why there are none."""
    lines = ["| shape | N | wall µs/task | CPU µs/task |", "|---|---:|---:|---:|"]
    for c in cores:
        if isinstance(c, str):
            return f"Core scheduler: {c}"
        lines.append(f"| {c.shape} | {c.tasks:,} | {c.wall_us:,.1f} | {c.cpu_us:,.1f} |")
    return "\n".join(lines)


def header() -> list[str]:
    """Where the measured engine comes from, so a before / after pair can be trusted."""
    import orchestrator.agents as agents
    import orchestrator.tools as tools

    root = _CHECKOUT or Path(str(orchestrator.__file__)).resolve().parent
    loaded = [
        m
        for name, m in sorted(sys.modules.items())
        if name.split(".")[0] == "orchestrator" and getattr(m, "__file__", None)
    ]
    stray = [
        str(m.__file__) for m in loaded if not Path(str(m.__file__)).resolve().is_relative_to(root)
    ]
    where = f"all {len(loaded)} loaded `orchestrator*` modules are under `{root}`"
    return [
        f"- orchestrator: `{orchestrator.__file__}`",
        f"- orchestrator.agents: `{agents.__file__}`",
        f"- orchestrator.tools: `{tools.__file__}`",
        f"- {f'**modules from elsewhere: {stray}**' if stray else where}",
        f"- checkout: `{_commit()}`",
    ]


def section(
    label: str,
    args: argparse.Namespace,
    cells: Sequence[Cell],
    core: str,
    *,
    load: tuple[float, float],
) -> str:
    """The results section for `label`."""
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    responder = sum(s.responder_s for c in cells for s in c.samples)
    wall = sum(s.wall_s for c in cells for s in c.samples)
    parts = [
        f"## {label}",
        "",
        f"{when}; Python {platform.python_version()}; {_cpus()} CPUs (1-minute load average "
        f"{load[0]:.1f} at the start, {load[1]:.1f} at the end); median of {args.reps} "
        f"repetition(s) per row after a warm-up, the rows interleaved; "
        f"`Orchestrator(client=ScriptedModel, builtin_tools=False, review=...)` with default "
        f"settings (max_parallel 8, streaming planner, latency history); a fresh temp workdir "
        f"and run root per run. Layered: layers of {LAYER_WIDTH}, each task needs 2 of the "
        f"layer above.",
        "",
        *header(),
        "",
        table(cells),
        "",
        f"Per task: the whole run (planning, dispatch, workers, review, synthesis, event log, "
        f"store) ÷ N, median of the repetitions; best wall: the fastest one. wall spread: "
        f"(max - min) ÷ median. The bench's own responders took {responder / wall:.1%} of the "
        f"wall time.",
        "",
        f"Core `Scheduler` + `Dispatcher` alone, same DAGs, instant tasks, cap "
        f"{args.core_parallel}:",
        "",
        core,
    ]
    return "\n".join(parts) + "\n"


def write(path: Path, label: str, text: str) -> None:
    """Put `text` into `path` as the section for `label`, replacing an older one."""
    start, end = f"<!-- section: {label} -->", f"<!-- end: {label} -->"
    block = f"{start}\n{text}{end}\n"
    if not path.exists():
        path.write_text(
            "# Engine overhead per task\n\nWritten by `python -m bench.engine_overhead`.\n\n"
            + block
        )
        return
    old = path.read_text()
    if start in old and end in old:
        head, rest = old.split(start, 1)
        _, tail = rest.split(end, 1)
        path.write_text(head + block + tail.lstrip("\n"))
    else:
        path.write_text(old.rstrip("\n") + "\n\n" + block)


def _commit() -> str:
    """The measured checkout's commit, marked when it has uncommitted changes."""
    where = _CHECKOUT or Path(orchestrator.__file__).parent

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=where, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "orchestrator", "agents", "tools")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{commit} + uncommitted changes" if dirty else commit


def _cpus() -> int:
    from orchestrator.settings import cpu_count

    return cpu_count()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; `--quick` means 1 repetition of 200 tasks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="1 repetition, 200 tasks")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per row (default 5)")
    parser.add_argument("--sizes", type=_ints, default=None, help="e.g. 200,1000")
    parser.add_argument("--label", default=None, help="the section name in the results file")
    parser.add_argument("--out", type=Path, default=RESULTS / "engine_overhead.md")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print every repetition as JSON on stdout (the table goes to stderr)",
    )
    parser.add_argument("--no-core", action="store_true", help="skip the scheduler-alone rows")
    parser.add_argument("--core-parallel", type=int, default=8, help="cap of the core rows")
    args = parser.parse_args(argv)
    args.reps = args.reps or (1 if args.quick else 5)
    args.sizes = args.sizes or ([200] if args.quick else [200, 1000])
    args.label = args.label or f"{_commit()} ({'quick' if args.quick else 'full'})"
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Measure every cell, print the section, write it to `--out`."""
    args = parse_args(argv)
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    for line in header():
        log(line)
    warm_up()
    load = os.getloadavg()[0]
    cells = measure_all(args, log)
    cores: list[CoreCell | str] = []
    if not args.no_core:
        cores = [
            measure_core(shape, n, args.reps, args.core_parallel)
            for shape in SHAPES
            for n in args.sizes
        ]
    core = core_table(cores) if cores else "not measured (--no-core)"
    text = section(args.label, args, cells, core, load=(load, os.getloadavg()[0]))
    print(text, file=sys.stderr if args.json else sys.stdout)  # --json: stdout is the JSON only
    if args.json:
        raw = {
            "label": args.label,
            "orchestrator": orchestrator.__file__,
            "cells": [
                {
                    "shape": c.shape,
                    "tasks": c.tasks,
                    "review": c.review,
                    "wall_us": c.wall_us,
                    "best_wall_us": c.best_wall_us,
                    "cpu_us": c.cpu_us,
                    "samples": [asdict(s) for s in c.samples],
                }
                for c in cells
            ],
            "core": [c if isinstance(c, str) else asdict(c) for c in cores],
        }
        print(json.dumps(raw, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write(args.out, args.label, text)


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


if __name__ == "__main__":
    main()
