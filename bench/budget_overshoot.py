"""How far past its budget the whole engine ends when many calls run at once (issue 12).

Run with: `python -m bench.budget_overshoot`: 8-, 32- and 64-way concurrency x a cost budget, a
token budget and a call cap, 200 seeded runs per cell, for the working tree (or `--after REV`)
and for `--before REV` (default 8bc1feb^: budgets checked before a call, counted after it); a
commit is measured by copying this file into a `git worktree` of it and running it there, in a
second process at the same time. `--tiny`: 3 runs at 8-way, the working tree only.

A run is `Engine.run` with a `ScriptedModel`: the planner streams a plan of as many independent
tasks as the concurrency (in one chunk, so every task is ready at once), each worker reports
"done" without a tool call after a few event-loop checkpoints (so the calls overlap), the reviewer
accepts every task it is shown, the synthesizer writes one line. Every reply's usage is seeded
and random: the input as the engine estimates it, an output between 1 token and the request's
cap. Each seed draws a budget between 1.5 x the planner's worst case and a whole run's spend
(measured once per width, without a budget), so most runs are stopped by it. Per run: the
spend (the run's `usage`; for the cap, the calls the model received) past the budget, as a share
of the budget and in multiples of one call's reservation (the largest worst case of any call of
that run: input as sent + output cap, priced at the call's model, the hold `Gateway._reserve`
takes).

This module imports nothing of the repository but `orchestrator` (and bench/sections.py in the
parent process, to write the results) and maps `orchestrator.agents` / `.tools` to the folders
beside the imported `orchestrator` (as bench/engine_overhead.py does), so the same file measures
whichever checkout its working directory is: that is how another commit is measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.abc
import importlib.machinery
import importlib.util
import json
import math
import os
import platform
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from time import perf_counter
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
    """Make `orchestrator.agents` / `.tools` come from the checkout `orchestrator` comes from (an
    editable install would load them from the installed one); returns that checkout's root."""
    spec = importlib.util.find_spec("orchestrator")
    if spec is None or spec.origin is None:
        return None
    root = Path(spec.origin).resolve().parent.parent
    packages = {
        f"orchestrator.{name}": root / name
        for name in ("agents", "tools")
        if (root / name / "__init__.py").is_file()
    }
    if packages:
        sys.meta_path.insert(0, _CheckoutFinder(packages))
    return root


_CHECKOUT = _pin_checkout()

import anyio  # noqa: E402 - after the pin, like every import that may load orchestrator
import anyio.lowlevel  # noqa: E402

import orchestrator  # noqa: E402
from orchestrator.agents.planner import DagPlanner, PlanOut  # noqa: E402
from orchestrator.agents.reviewer import BatchReviewer, ReviewOut, VerdictOut  # noqa: E402
from orchestrator.agents.schemas import TaskOut  # noqa: E402
from orchestrator.agents.synthesizer import AnswerSynthesizer  # noqa: E402
from orchestrator.agents.worker import ExecutorWorker, LeafReportOut  # noqa: E402
from orchestrator.llm import ModelReply, ModelRequest, estimate_input_tokens  # noqa: E402
from orchestrator.models import Limits, TierSpec, TokenUsage  # noqa: E402
from orchestrator.pricing import PriceTable  # noqa: E402
from orchestrator.retry import RetryPolicy  # noqa: E402
from orchestrator.run import Engine, EngineConfig  # noqa: E402
from orchestrator.testing import ScriptedModel  # noqa: E402

RESULTS = Path(__file__).parent / "results"
Kind = Literal["cost", "tokens", "calls"]
KINDS: tuple[Kind, ...] = ("cost", "tokens", "calls")
WIDTHS = (8, 32, 64)
BEFORE = "8bc1feb^"
"""The last commit before budgets were reserved (issue 12): checked before a call, counted after."""
OUTPUT_CAP = 4_096
"""A call's output cap when its request sets none: `Limits.reserve_output_tokens` where it exists
(set to this), and the most a scripted reply produces."""
LADDER = (
    TierSpec(name="mini", model="gpt-5.4-mini"),
    TierSpec(name="base", model="gpt-5.4"),
)
"""Two priced tiers: the base tier plans, reviews and answers, leaves run on mini."""
PRICES = PriceTable.default()
CHECKPOINTS = (20, 60)
"""A worker call takes a seeded number of event-loop checkpoints in this range."""
PLANNER_ROOM = 1.5
"""The smallest budget is this many times the planner's worst case: the plan must fit."""
GOAL = "Summarise every part of the input and report the key facts of each."
_UNDER_REVIEW = "### "


class BenchCheckError(Exception):
    """A run did not do what the bench needs (the calibration run did not complete)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    """One seeded run against one budget."""

    seed: int
    budget: float
    """USD, tokens or calls."""
    spent: float
    """The run's usage in the budget's unit (calls: the calls the model received)."""
    hold: float
    """The largest worst case of one call of the run, in the budget's unit (calls: 1)."""
    calls: int
    peak: int
    """Most worker calls in flight at once."""
    ended: str
    """The run's status, or the type of the exception it raised."""

    @property
    def over(self) -> float:
        return max(0.0, self.spent - self.budget)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Cell:
    """Every seeded run of one budget kind at one width."""

    kind: Kind
    width: int
    samples: tuple[Sample, ...]

    def share_over(self) -> float:
        return sum(s.over > 0 for s in self.samples) / len(self.samples)

    def pct(self) -> list[float]:
        """Overshoot as a share of the budget, one per run (0 when within it)."""
        return [s.over / s.budget for s in self.samples]

    def holds(self) -> list[float]:
        """Overshoot in multiples of one call's reservation, one per run."""
        return [s.over / s.hold for s in self.samples]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Scale:
    """One run of a width without a budget: what a whole run spends, and the planner's hold."""

    cost_usd: float
    tokens: int
    calls: int
    planner_cost_usd: float
    planner_tokens: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Side:
    """Every cell measured on one checkout."""

    checkout: str
    commit: str
    reserve_field: bool
    """Whether this checkout's `Limits` has `reserve_output_tokens` (reservations)."""
    seconds: float
    scales: dict[int, Scale]
    cells: tuple[Cell, ...]


# -- the scripted model -------------------------------------------------------------------------
def plan_reply(width: int) -> PlanOut:
    """`width` independent tasks."""
    tasks = [
        TaskOut(
            id=f"part_{i:03d}",
            instruction=f"Summarise part {i} of the input and list its key facts.",
            deps=[],
            tools=[],
            produces=f"the key facts of part {i}",
            check_command=None,
            tier=None,
            est_seconds=None,
        )
        for i in range(width)
    ]
    return PlanOut(rationale="One task per part; parts are independent.", tasks=tasks)


def worst_case(request: ModelRequest) -> tuple[float, int]:
    """The call's reservation (USD, tokens): input as sent, the whole output cap, no cache."""
    tokens_in = estimate_input_tokens(request)
    tokens_out = request.max_output_tokens or OUTPUT_CAP
    usage = TokenUsage(input_tokens=tokens_in, output_tokens=tokens_out)
    return PRICES.cost(request.model, usage).cost_usd, tokens_in + tokens_out


class Replies:
    """Every role's replies, with seeded random usage within the request's cap."""

    def __init__(self, width: int, seed: int) -> None:
        self._plan = plan_reply(width).model_dump_json()
        self._done = LeafReportOut(
            status="done", summary="done", outputs=[], confidence=0.9
        ).model_dump_json()
        self._seed = seed
        self._counts: dict[str, int] = {}
        self.in_flight = 0
        self.peak = 0

    def _usage(self, request: ModelRequest) -> TokenUsage:
        # One stream per call, named by what the call is (role, task, how many before it), so
        # the draws do not depend on the order in which concurrent calls arrive.
        key = f"{request.role}/{request.task_id}"
        self._counts[key] = n = self._counts.get(key, 0) + 1
        rng = random.Random(f"{self._seed}/{key}/{n}")
        cap = request.max_output_tokens or OUTPUT_CAP
        return TokenUsage(
            input_tokens=estimate_input_tokens(request),
            output_tokens=rng.randint(1, cap),
            requests=1,
        )

    def planner(self, request: ModelRequest) -> ModelReply:
        return ModelReply(text=self._plan, usage=self._usage(request))

    async def worker(self, request: ModelRequest) -> ModelReply:
        """Report "done" after 1-4 checkpoints, so the calls of ready tasks overlap."""
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        rng = random.Random(f"{self._seed}/wait/{request.task_id}")
        try:
            for _ in range(rng.randint(CHECKPOINTS[0], CHECKPOINTS[1])):
                await anyio.lowlevel.checkpoint()
        finally:
            self.in_flight -= 1
        return ModelReply(text=self._done, usage=self._usage(request))

    def reviewer(self, request: ModelRequest) -> ModelReply:
        """Accept every task under review, by name."""
        text = "\n".join(m.content for m in request.messages if m.role == "user")
        verdicts = [
            VerdictOut(task_id=line.split()[1], verdict="accept", feedback="", new_tasks=None)
            for line in text.splitlines()
            if line.startswith(_UNDER_REVIEW) and "(tier " in line
        ]
        reply = ReviewOut(verdicts=verdicts).model_dump_json()
        return ModelReply(text=reply, usage=self._usage(request))

    def synthesizer(self, request: ModelRequest) -> ModelReply:
        return ModelReply(text="Every part is summarised.", usage=self._usage(request))

    def model(self) -> ScriptedModel:
        model = (
            ScriptedModel()
            .respond("planner", self.planner)
            .respond("worker", self.worker)
            .respond("reviewer", self.reviewer)
            .respond("synthesizer", self.synthesizer)
        )
        model.stream_chunk_chars = 1 << 20  # the whole plan at once: every task ready together
        return model


# -- one run ------------------------------------------------------------------------------------
def limits_for(width: int, **budget: float | int | None) -> Limits:
    """`Limits` with the width and budget; the output reserve set where the checkout has it."""
    names = {f.name for f in dataclasses.fields(Limits)}
    extra: dict[str, int] = {"reserve_output_tokens": OUTPUT_CAP}
    kwargs = {k: v for k, v in extra.items() if k in names}
    return Limits(max_parallel=width, **budget, **kwargs)  # type: ignore[arg-type]


def build_engine(model: ScriptedModel, limits: Limits, run_root: Path) -> Engine:
    """The engine as tests/helpers.py builds it, with the bench's ladder and no workspace copies."""
    return Engine(
        model,
        planner=DagPlanner(),
        worker=ExecutorWorker(),
        reviewer=BatchReviewer(),
        synthesizer=AnswerSynthesizer(),
        config=EngineConfig(
            ladder=LADDER,
            limits=limits,
            prices=PRICES,
            run_root=run_root,
            latency_history=False,
            retry=RetryPolicy(base_delay_s=0.001, max_delay_s=0.01),
            isolation=False,
        ),
    )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What one run did."""

    requests: tuple[ModelRequest, ...]
    """Every call the model received."""
    cost_usd: float
    tokens: int
    peak: int
    ended: str
    """The run's status, or the type of the exception it raised."""

    def spent(self, kind: Kind) -> float:
        """The spend in the budget's unit: the run's usage; calls: the calls the model received."""
        if kind == "calls":
            return float(len(self.requests))
        return self.cost_usd if kind == "cost" else float(self.tokens)

    def hold(self, kind: Kind) -> float:
        """One call's reservation in the budget's unit: the largest of the run's calls."""
        if kind == "calls":
            return 1.0
        holds = [worst_case(r) for r in self.requests]
        return max(h[0] for h in holds) if kind == "cost" else float(max(h[1] for h in holds))


async def run_once(width: int, seed: int, limits: Limits) -> Outcome:
    """One goal through `Engine.run` in a fresh temp dir."""
    replies = Replies(width, seed)
    model = replies.model()
    cost, tokens = 0.0, 0
    with tempfile.TemporaryDirectory(prefix="budget_overshoot_") as tmp:
        try:
            result = await build_engine(model, limits, Path(tmp) / "runs").run(GOAL, workdir=tmp)
        except Exception as exc:  # a run that raises is a figure of the table, not the end
            ended = type(exc).__name__
        else:
            ended = result.status
            cost, tokens = result.usage.cost_usd, result.usage.tokens.total_tokens
    return Outcome(
        requests=tuple(c.request for c in model.calls),
        cost_usd=cost,
        tokens=tokens,
        peak=replies.peak,
        ended=ended,
    )


def measure_scale(width: int) -> Scale:
    """A whole run of `width` tasks without a budget.

    Raises:
        BenchCheckError: the run did not complete.
    """
    run = anyio.run(run_once, width, 0, limits_for(width))
    if run.ended != "completed":
        raise BenchCheckError(f"width {width}: the run without a budget ended {run.ended}")
    planner = worst_case(run.requests[0])
    return Scale(
        cost_usd=run.cost_usd,
        tokens=run.tokens,
        calls=len(run.requests),
        planner_cost_usd=planner[0],
        planner_tokens=planner[1],
    )


def budget_for(kind: Kind, scale: Scale, seed: int) -> float | int:
    """The seed's budget: from 1.5 x the planner's worst case (so the plan fits even with a share
    held back for the final answer) to a whole run's spend."""
    rng = random.Random(f"budget/{kind}/{seed}")
    if kind == "cost":
        return rng.uniform(PLANNER_ROOM * scale.planner_cost_usd, scale.cost_usd)
    if kind == "tokens":
        return rng.randint(math.ceil(PLANNER_ROOM * scale.planner_tokens), scale.tokens)
    return rng.randint(2, scale.calls)


def measure_run(kind: Kind, width: int, seed: int, scale: Scale) -> Sample:
    budget = budget_for(kind, scale, seed)
    field = {"cost": "max_cost_usd", "tokens": "max_total_tokens", "calls": "max_model_calls"}
    run = anyio.run(run_once, width, seed, limits_for(width, **{field[kind]: budget}))
    return Sample(
        seed=seed,
        budget=float(budget),
        spent=run.spent(kind),
        hold=run.hold(kind),
        calls=len(run.requests),
        peak=run.peak,
        ended=run.ended,
    )


def measure_side(runs: int, widths: Sequence[int], log: Callable[[str], None]) -> Side:
    """Every cell on the imported checkout, `runs` seeds each."""
    begin = perf_counter()
    scales = {w: measure_scale(w) for w in widths}
    cells: list[Cell] = []
    for width in widths:
        for kind in KINDS:
            samples = tuple(measure_run(kind, width, seed, scales[width]) for seed in range(runs))
            cell = Cell(kind=kind, width=width, samples=samples)
            cells.append(cell)
            log(
                f"[{_commit()}] {kind:6} x{width:<3} {runs} runs: {cell.share_over():.0%} over "
                f"budget, at most {max(cell.pct()):.1%} of it"
            )
    return Side(
        checkout=str(_CHECKOUT),
        commit=_commit(),
        reserve_field="reserve_output_tokens" in {f.name for f in dataclasses.fields(Limits)},
        seconds=perf_counter() - begin,
        scales=scales,
        cells=tuple(cells),
    )


def side_json(side: Side) -> str:
    return json.dumps(dataclasses.asdict(side))


def side_from_json(text: str) -> Side:
    raw = json.loads(text)
    cells = tuple(
        Cell(
            kind=c["kind"],
            width=c["width"],
            samples=tuple(Sample(**s) for s in c["samples"]),
        )
        for c in raw["cells"]
    )
    scales = {int(w): Scale(**v) for w, v in raw["scales"].items()}
    return Side(
        checkout=raw["checkout"],
        commit=raw["commit"],
        reserve_field=raw["reserve_field"],
        seconds=raw["seconds"],
        scales=scales,
        cells=cells,
    )


def _commit() -> str:
    """The measured checkout's commit, marked when its engine has uncommitted changes."""
    where = _CHECKOUT or Path(str(orchestrator.__file__)).parent

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=where, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "orchestrator", "agents", "tools")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    files = len(dirty.splitlines())
    return f"{commit} + uncommitted changes to {files} files" if dirty else commit


def _git(*argv: str, cwd: Path) -> str:
    done = subprocess.run(["git", *argv], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


class Elsewhere:
    """This script run on another commit: copied into a `git worktree` of it, in a subprocess."""

    def __init__(self, rev: str, runs: int, widths: Sequence[int]) -> None:
        self.rev = rev
        self._repo = Path(__file__).resolve().parent.parent
        self._dir = Path(tempfile.mkdtemp(prefix="budget_overshoot_"))
        self._tree = self._dir / "tree"
        self._proc: subprocess.Popen[str] | None = None
        try:
            _git("worktree", "add", "--detach", "--quiet", str(self._tree), rev, cwd=self._repo)
            bench = self._tree / "bench"
            bench.mkdir(exist_ok=True)
            (bench / "__init__.py").touch()
            shutil.copy2(Path(__file__), bench / "budget_overshoot.py")
            env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
            argv = ["--json", "--runs", str(runs), "--widths", ",".join(map(str, widths))]
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "bench.budget_overshoot", *argv],
                cwd=self._tree,
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
        except BaseException:
            self.close()
            raise

    def result(self) -> Side:
        """Wait for the subprocess; its side.

        Raises:
            BenchCheckError: the subprocess failed.
        """
        assert self._proc is not None
        out, _ = self._proc.communicate()
        if self._proc.returncode != 0:
            raise BenchCheckError(f"the run at {self.rev} exited with {self._proc.returncode}")
        return side_from_json(out)

    def close(self) -> None:
        """Stop the subprocess if it still runs; remove the worktree."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        if self._tree.exists():
            try:
                _git("worktree", "remove", "--force", str(self._tree), cwd=self._repo)
            except subprocess.CalledProcessError:
                shutil.rmtree(self._tree, ignore_errors=True)
        _git("worktree", "prune", cwd=self._repo)
        shutil.rmtree(self._dir, ignore_errors=True)


# -- the report ---------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _dist(values: Sequence[float], unit: Literal["pct", "x"]) -> str:
    qs = (percentile(values, 0.5), percentile(values, 0.95), max(values))
    if unit == "pct":
        return " / ".join(f"{v:.0%}" if v == 0 or v >= 0.995 else f"{v:.1%}" for v in qs)
    return " / ".join("0" if v == 0 else f"{v:.2f}" for v in qs)


def _cells(side: Side) -> dict[tuple[Kind, int], Cell]:
    return {(c.kind, c.width): c for c in side.cells}


_UNIT = {"cost": "USD", "tokens": "tokens", "calls": "calls"}


def compare_table(before: Side | None, after: Side) -> str:
    """Before and after side by side: overshoot as a share of the budget and in reservations."""
    lines = [
        "| budget | width | runs | over budget, before | after | overshoot ÷ budget, "
        "p50 / p95 / max, before | after | overshoot ÷ one call's reservation, "
        "p50 / p95 / max, before | after |",
        "|---|---:|---:|---:|---:|---|---|---|---|",
    ]
    olds = _cells(before) if before else {}
    for cell in after.cells:
        old = olds.get((cell.kind, cell.width))
        na = "n/a"
        lines.append(
            f"| {cell.kind} | {cell.width} | {len(cell.samples)} | "
            f"{f'{old.share_over():.0%}' if old else na} | {cell.share_over():.0%} | "
            f"{_dist(old.pct(), 'pct') if old else na} | {_dist(cell.pct(), 'pct')} | "
            f"{_dist(old.holds(), 'x') if old else na} | {_dist(cell.holds(), 'x')} |"
        )
    return "\n".join(lines)


def detail_table(side: Side) -> str:
    """One checkout's cells: budgets, calls, overlap, how the runs ended."""
    lines = [
        "| budget | width | runs | budget range | one call's reservation (largest) | spent ÷ "
        "budget, median | calls median / max | workers in flight, median peak | ended |",
        "|---|---:|---:|---|---|---:|---|---:|---|",
    ]
    for c in side.cells:
        budgets = [s.budget for s in c.samples]
        holds = [s.hold for s in c.samples]
        calls = [s.calls for s in c.samples]
        ended: dict[str, int] = {}
        for s in c.samples:
            ended[s.ended] = ended.get(s.ended, 0) + 1
        lines.append(
            f"| {c.kind} | {c.width} | {len(c.samples)} | {_amount(c.kind, min(budgets))} – "
            f"{_amount(c.kind, max(budgets))} | {_amount(c.kind, max(holds))} | "
            f"{statistics.median(s.spent / s.budget for s in c.samples):.0%} | "
            f"{statistics.median(calls):.0f} / {max(calls)} | "
            f"{statistics.median(s.peak for s in c.samples):.0f} | "
            + ", ".join(f"{k} {v}" for k, v in sorted(ended.items()))
            + " |"
        )
    return "\n".join(lines)


def scale_table(side: Side) -> str:
    lines = [
        "| width | whole run: cost | tokens | calls | planner's reservation: cost | tokens |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for width, s in sorted(side.scales.items()):
        lines.append(
            f"| {width} | ${s.cost_usd:.4f} | {s.tokens:,} | {s.calls} | "
            f"${s.planner_cost_usd:.4f} | {s.planner_tokens:,} |"
        )
    return "\n".join(lines)


def _amount(kind: Kind, value: float) -> str:
    if kind == "cost":
        return f"${value:.4f}"
    return f"{value:,.0f}"


def _name(side: Side, rev: str | None) -> str:
    where = f" (`{rev}`)" if rev else " (the working tree)"
    kind = "reservations" if side.reserve_field else "checked before, counted after"
    return f"`{side.commit}`{where}, {kind}"


def section(args: argparse.Namespace, command: str, before: Side | None, after: Side) -> str:
    """The results section for `args.label`."""
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    sides = [("before", before, args.before), ("after", after, args.after)]
    named = [f"{label}: {_name(side, rev)}" for label, side, rev in sides if side is not None]
    seconds = ", ".join(
        f"{label} {side.seconds:.0f} s" for label, side, _ in sides if side is not None
    )
    if before is not None:
        seconds += " (the two sides at once, one process each)"
    parts = [
        f"## {args.label}",
        "",
        f"Command: `{command}`. {'; '.join(named)}.",
        "",
        f"{when}; Python {platform.python_version()}; {_cpus()} CPUs; {args.runs} seeded runs "
        f"per cell; measuring took {seconds}.",
        "",
        "Each run: `Engine.run` with a `ScriptedModel`, a plan of *width* independent tasks, "
        "`Limits.max_parallel` = *width*, review on; ladder gpt-5.4-mini (leaves) → gpt-5.4 "
        f"(plan, review, answer), list prices. Every reply's usage is seeded: input as the "
        f"engine estimates it, output uniform in 1 … the call's cap ({OUTPUT_CAP:,} tokens, "
        f"as no role sets one); each worker call takes {CHECKPOINTS[0]}–{CHECKPOINTS[1]} "
        "event-loop checkpoints, so the calls of ready tasks overlap (the median peak of "
        "worker calls in flight is below). One budget per cell, drawn per seed between "
        f"{PLANNER_ROOM} × the planner's reservation (the plan always fits) and a whole run's "
        "spend (the last table). Overshoot: the run's usage past its budget (calls: the calls "
        "the model received past the cap), 0 for a run within it; as a share of the budget and "
        "in multiples of the largest reservation of one call of that run (input as sent + "
        "output cap at the call's model price: the hold `Gateway._reserve` takes; for the cap, "
        "1 call). With reservations a call starts only if what is spent, what the calls in "
        "flight hold and its own worst case fit, so no run should pass its budget at all; the "
        "issue's bound is one reservation. The price is in the detail tables: spent ÷ budget "
        "shows how much of its budget a run used (a worst case holds room a reply rarely uses).",
        "",
        compare_table(before, after),
        "",
    ]
    for label, side, rev in sides:
        if side is None:
            continue
        parts += [f"{label.capitalize()}, {_name(side, rev)}:", "", detail_table(side), ""]
    if before is None or before.scales == after.scales:
        same = "" if before is None else ", the same on both sides"
        parts += [f"Whole runs without a budget (seed 0; the budgets' scale{same}):", ""]
        parts += [scale_table(after)]
    else:
        for label, side in (("before", before), ("after", after)):
            parts += [f"Whole runs without a budget, {label} (seed 0; its budgets' scale):", ""]
            parts += [scale_table(side), ""]
    return "\n".join(parts) + "\n"


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# -- the command --------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=None, help="seeded runs per cell (200)")
    parser.add_argument("--widths", type=_ints, default=None, help="concurrency, e.g. 8,32,64")
    parser.add_argument(
        "--before", default=None, help=f"commit to compare with (default {BEFORE}; 'none': skip)"
    )
    parser.add_argument(
        "--after", default=None, help="commit to measure as after (default: the working tree)"
    )
    parser.add_argument("--tiny", action="store_true", help="3 runs, width 8, no before")
    parser.add_argument("--label", default=None, help="the section name in the results file")
    parser.add_argument("--out", type=Path, default=RESULTS / "budget_overshoot.md")
    parser.add_argument(
        "--json", action="store_true", help="measure here only; print the JSON, write nothing"
    )
    args = parser.parse_args(argv)
    args.runs = args.runs or (3 if args.tiny else 200)
    args.widths = args.widths or ([8] if args.tiny else list(WIDTHS))
    if args.before is None:
        args.before = "none" if args.tiny else BEFORE
    args.before = None if args.before == "none" else args.before
    args.label = args.label or f"{args.before or 'no before'} vs {args.after or 'working tree'}"
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Measure both sides at once, print the section, write it to `--out`."""
    args = parse_args(argv)
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    if args.json:
        print(side_json(measure_side(args.runs, args.widths, log)))
        return
    remotes: dict[str, Elsewhere] = {}
    try:
        for label in ("before", "after"):
            rev = getattr(args, label)
            if rev is not None:
                remotes[label] = Elsewhere(rev, args.runs, args.widths)
        here = None if args.after else measure_side(args.runs, args.widths, log)
        before = remotes["before"].result() if "before" in remotes else None
        after = remotes["after"].result() if "after" in remotes else here
    finally:
        for remote in remotes.values():
            remote.close()
    assert after is not None
    command = shlex.join(["python", "-m", "bench.budget_overshoot", *(argv or sys.argv[1:])])
    text = section(args, command, before, after)
    print(text)
    from bench.sections import write_section  # the parent only: older checkouts lack it

    args.out.parent.mkdir(parents=True, exist_ok=True)
    heading = (
        "# Budget overshoot of the whole engine under concurrency\n\n"
        "Written by `python -m bench.budget_overshoot` (bench/README.md); each section names "
        "the command and the commits that produced it."
    )
    write_section(args.out, args.label, text, heading=heading)


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


if __name__ == "__main__":
    main()
