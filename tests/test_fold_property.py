"""The fold property on whole engine runs: random plans and outcomes, then crashes at random points.

For each seed a random DAG (3-15 tasks, random tier hints) runs through the real `Engine` with
`ScriptedModel` responders that report done / failed / ambiguous / garbage at random, fail some
tasks for good (so their dependents are skipped), and review with random accept / retry /
escalate / replan verdicts. `journal_verify=True` makes the recorder check fold(journal) == live
state at every commit. Afterwards:

- the fold of the journal gives exactly the `RunResult` the run returned;
- the journal cut after a random event k (a crash there) resumes without running any task again
  that had succeeded in those k events, and the resumed run ends with every task terminal.
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
import shutil
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from orchestrator.agents.planner import DagPlanner, PlanOut
from orchestrator.agents.reviewer import BatchReviewer, ReviewOut, VerdictOut
from orchestrator.agents.schemas import TaskOut
from orchestrator.agents.synthesizer import AnswerSynthesizer
from orchestrator.agents.worker import ExecutorWorker
from orchestrator.errors import ModelAPIError
from orchestrator.events import Event, TaskSkipped, TaskSucceeded
from orchestrator.fold import TERMINAL_PHASES, RunState, fold
from orchestrator.journal import JOURNAL_FILE, read_events
from orchestrator.llm import ModelReply, ModelRequest
from orchestrator.models import Limits, RunResult, TaskId
from orchestrator.outcome import build_result
from orchestrator.run import Engine, EngineConfig
from orchestrator.testing import ScriptedModel

from .helpers import FAST_RETRY, LADDER, accept_all, answer, leaf, plan, task, verdict

SEEDS = range(32)
CUTS_PER_SEED = 3
TIERS = (None, None, None, "mini", "base", "frontier")
_REVIEW_ITEM = re.compile(r"^### (\S+) \(tier ", flags=re.MULTILINE)


@dataclass(frozen=True, slots=True, kw_only=True)
class Shape:
    """One seed's run: the plan, which tasks are doomed, and how the engine is configured."""

    seed: int
    tasks: tuple[TaskOut, ...]
    doomed: frozenset[str]
    """Never report done: they climb to the top tier and fail for good."""
    fatal: frozenset[str]
    """Fail at once with a non-retryable API error."""
    stream_plan: bool
    max_parallel: int
    max_model_calls: int | None


def draw_shape(seed: int) -> Shape:
    rng = random.Random(seed)
    n = rng.randint(3, 15)
    tasks: list[TaskOut] = []
    for i in range(n):
        deps = [f"t{j}" for j in rng.sample(range(i), k=min(i, rng.randint(0, 3)))]
        tasks.append(task(f"t{i}", *sorted(deps), tier=rng.choice(TIERS)))
    ids = [t.id for t in tasks]
    trouble = 0.15 if rng.random() < 0.6 else 0.0
    doomed = {tid for tid in ids if rng.random() < trouble}
    fatal = {tid for tid in ids if tid not in doomed and rng.random() < trouble / 3}
    budget = rng.randint(n, 4 * n) if rng.random() < 0.2 else None
    return Shape(
        seed=seed,
        tasks=tuple(tasks),
        doomed=frozenset(doomed),
        fatal=frozenset(fatal),
        stream_plan=rng.random() < 0.5,
        max_parallel=rng.choice((1, 2, 4, 8)),
        max_model_calls=budget,
    )


class Script:
    """Responders for every role. Each task's replies depend only on (seed, tag, task, call
    number), so concurrent scheduling does not change what a task is told."""

    def __init__(self, shape: Shape, tag: str) -> None:
        self.shape, self.tag = shape, tag
        self.worker_calls: Counter[str] = Counter()
        self.reviews: Counter[str] = Counter()
        self.plan: PlanOut = plan(*shape.tasks)

    def model(self) -> ScriptedModel:
        model = ScriptedModel()
        model.respond("planner", self.planner)
        model.respond("worker", self.worker)
        model.respond("reviewer", self.reviewer)
        model.respond("synthesizer", lambda _: ModelReply(text="final answer"))
        return model

    def _rng(self, *key: object) -> random.Random:
        return random.Random("/".join(map(str, (self.shape.seed, self.tag, *key))))

    def planner(self, request: ModelRequest) -> ModelReply:
        return ModelReply(text=self.plan.model_dump_json())

    def worker(self, request: ModelRequest) -> ModelReply:
        tid = str(request.task_id)
        n = self.worker_calls[tid]
        self.worker_calls[tid] += 1
        if tid in self.shape.fatal:
            raise ModelAPIError("bad request", status_code=400, retryable=False)
        rng = self._rng("worker", tid, n)
        roll = rng.random()
        if roll < 0.04:
            raise ModelAPIError("overloaded", status_code=503, retryable=True)
        if roll < 0.08:
            return ModelReply(text="not a report")
        if tid not in self.shape.doomed and roll < 0.8:
            report = leaf(f"{tid} done ({n})", value=f"{tid}-{n}")
        else:
            report = leaf(f"{tid} stuck ({n})", status=rng.choice(("failed", "ambiguous")))
        return ModelReply(text=report.model_dump_json())

    def reviewer(self, request: ModelRequest) -> ModelReply:
        text = "\n".join(getattr(m, "content", "") for m in request.messages)
        verdicts: list[VerdictOut] = []
        for tid in _REVIEW_ITEM.findall(text):
            n = self.reviews[tid]
            self.reviews[tid] += 1
            roll = self._rng("review", tid, n).random()
            if roll < 0.78:
                verdicts.append(verdict(tid, "accept"))
            elif roll < 0.92:
                verdicts.append(verdict(tid, "retry", f"fix {tid} ({n})"))
            elif roll < 0.96:
                verdicts.append(verdict(tid, "escalate", f"too hard ({n})"))
            else:
                first = f"{tid}{self.tag}r{n}a"
                new = [task(first), task(f"{tid}{self.tag}r{n}b", first)]
                verdicts.append(verdict(tid, "replan", "split it", new_tasks=new))
        return ModelReply(text=ReviewOut(verdicts=verdicts).model_dump_json())


def make_engine(shape: Shape, script: Script, run_root: Path) -> Engine:
    limits = Limits(max_parallel=shape.max_parallel, max_model_calls=shape.max_model_calls)
    return verifying_engine(script.model(), run_root, limits, stream_plan=shape.stream_plan)


def verifying_engine(
    model: ScriptedModel, run_root: Path, limits: Limits, *, stream_plan: bool = True
) -> Engine:
    """An engine whose recorder checks fold(journal) == live state at every commit."""
    config = EngineConfig(
        ladder=LADDER,
        limits=limits,
        run_root=run_root,
        stream_plan=stream_plan,
        latency_history=False,
        retry=FAST_RETRY,
        journal_verify=True,
    )
    return Engine(
        model,
        planner=DagPlanner(),
        worker=ExecutorWorker(),
        reviewer=BatchReviewer(),
        synthesizer=AnswerSynthesizer(),
        config=config,
    )


def assert_result_is_the_fold(result: RunResult, run_dir: Path) -> RunState:
    """The fold of the run's journal gives exactly the result the run returned."""
    state = fold(read_events(run_dir))
    folded = build_result(state, status=result.status, ladder=LADDER, run_dir=str(run_dir))
    for f in dataclasses.fields(RunResult):
        assert getattr(folded, f.name) == getattr(result, f.name), f.name
    return state


def cut_journal(run_dir: Path, copy_root: Path, keep: int) -> Path:
    """A copy of the run as a crash after event `keep` would have left it."""
    copy = copy_root / run_dir.name
    shutil.copytree(run_dir, copy)
    for name in ("result.json", "events.jsonl"):
        (copy / name).unlink(missing_ok=True)
    db = sqlite3.connect(copy / JOURNAL_FILE, isolation_level=None)
    try:
        db.execute("PRAGMA synchronous=OFF")  # a scratch copy: no fsync needed
        db.execute("DELETE FROM events WHERE seq > ?", (keep,))
    finally:
        db.close()
    return copy


async def check_resume_after_cut(
    shape: Shape, run_dir: Path, events: list[Event], keep: int, root: Path, first: RunResult
) -> None:
    copy = cut_journal(run_dir, root, keep)
    done_before = {e.task_id for e in events[:keep] if isinstance(e, TaskSucceeded)}
    script = Script(shape, f"k{keep}")
    resumed = await make_engine(shape, script, root).resume(run_dir.name)
    where = f"seed {shape.seed}, cut after event {keep} of {len(events)}"
    again = {t: script.worker_calls[t] for t in done_before if script.worker_calls[t]}
    assert not again, f"{where}: succeeded tasks ran again: {again}"
    state = assert_result_is_the_fold(resumed, copy)
    open_tasks = {t: r.phase for t, r in state.tasks.items() if r.phase not in TERMINAL_PHASES}
    assert not open_tasks, f"{where}: tasks left open: {open_tasks}"
    assert state.status == resumed.status
    for tid in done_before:
        assert resumed.results[TaskId(tid)] == first.results[TaskId(tid)], f"{where}: {tid}"


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """A scratch directory in memory when the system has one (/dev/shm): these runs make about
    twenty fsyncs each (run index, journal setup), which on a busy disk would dominate the time
    of a test about logic. Durability itself is the kill matrix's to test."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="orch-fold-", dir=shm))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("seed", SEEDS, ids=lambda seed: f"seed{seed}")
async def test_fold_property_journal_folds_to_the_live_run_and_resumes(
    seed: int, scratch: Path
) -> None:
    shape = draw_shape(seed)
    with anyio.fail_after(8):
        result = await make_engine(shape, Script(shape, "run"), scratch / "runs").run("g")
    assert result.run_dir is not None
    run_dir = Path(result.run_dir)
    state = assert_result_is_the_fold(result, run_dir)
    open_tasks = {t: r.phase for t, r in state.tasks.items() if r.phase not in TERMINAL_PHASES}
    assert not open_tasks, f"seed {seed}: tasks left open: {open_tasks}"
    events = read_events(run_dir)
    assert state.seq == len(events)
    rng = random.Random(f"cuts/{seed}")
    for keep in sorted(rng.sample(range(1, len(events)), k=CUTS_PER_SEED)):
        with anyio.fail_after(8):
            await check_resume_after_cut(
                shape, run_dir, events, keep, scratch / f"cut{keep}", result
            )


# -- product bugs the property found, each as its smallest case ------------------------------
async def test_resume_after_a_failed_task_and_its_skipped_dependent(tmp_path: Path) -> None:
    """A crash after `b` was skipped (its dependency `a` failed): the resume keeps both results.

    Fails today: `Supervisor.add_tasks` calls `Scheduler.fail(b)` for the skipped `b`, but
    `Scheduler.add` has already marked `b` skipped (its dependency failed), so the resume aborts
    with `ValueError: task b cannot fail from skipped`.
    """
    model = ScriptedModel().script("planner", plan(task("a"), task("b", "a")))
    model.script("worker", ModelAPIError("bad request", status_code=400, retryable=False))
    model.respond("synthesizer", lambda _: ModelReply(text="final answer"))
    engine = verifying_engine(model, tmp_path / "runs", Limits(), stream_plan=False)
    result = await engine.run("g")
    assert result.run_dir is not None
    run_dir = Path(result.run_dir)
    events = read_events(run_dir)
    keep = 1 + next(i for i, e in enumerate(events) if isinstance(e, TaskSkipped))
    cut_journal(run_dir, tmp_path / "cut", keep)
    resumed_model = ScriptedModel().respond("synthesizer", lambda _: ModelReply(text="again"))
    resumed = await verifying_engine(resumed_model, tmp_path / "cut", Limits()).resume(run_dir.name)
    assert {t: r.kind for t, r in resumed.results.items()} == {"a": "failed", "b": "skipped"}
    assert resumed_model.calls_for("worker") == []


async def test_task_whose_attempt_hits_the_budget_ends_terminal(tmp_path: Path) -> None:
    """The planner's call uses the whole budget; `a`'s first model call is refused.

    Fails today: the attempt returns `BudgetHit`, `Supervisor.stop` skips only tasks that had not
    started, and nothing ends `a`: the finished run's journal folds to `a` still `running` (the
    result calls it skipped only because `build_result` fills in tasks without a result).
    """
    model = ScriptedModel().script("planner", plan(task("a")))
    model.respond("synthesizer", lambda _: ModelReply(text="final answer"))
    limits = Limits(max_model_calls=1)
    engine = verifying_engine(model, tmp_path / "runs", limits, stream_plan=False)
    result = await engine.run("g")
    assert result.status == "partial" and result.run_dir is not None
    state = assert_result_is_the_fold(result, Path(result.run_dir))
    assert state.tasks[TaskId("a")].phase == "skipped"
    assert state.tasks[TaskId("a")].resumable


async def test_review_refused_by_the_budget_is_reviewed_on_resume(tmp_path: Path) -> None:
    """The budget stops the run before `a`'s review; a resume with a larger budget reviews it.

    Fails today: `Reviews._review_failed` ends a task whose review the budget refused with
    `TaskUnreviewed(resumable=False)`, so it stays unreviewed for good, unlike every other way a
    budget stop ends work (`TaskSkipped(cause="budget")`, `close_reviews(resumable=True)`).
    """
    model = ScriptedModel().script("planner", plan(task("a")))
    model.script("worker", leaf("a done"), task="a")
    model.respond("synthesizer", lambda _: ModelReply(text="final answer"))
    tight = Limits(max_model_calls=3)  # the planner, a's one worker call, the answer
    engine = verifying_engine(model, tmp_path / "runs", tight, stream_plan=False)
    result = await engine.run("g")
    assert result.status == "partial" and result.run_dir is not None
    resumed_model = ScriptedModel().respond("reviewer", accept_all).respond("synthesizer", answer)
    engine = verifying_engine(resumed_model, tmp_path / "runs", Limits(), stream_plan=False)
    resumed = await engine.resume(Path(result.run_dir).name)
    assert resumed.status == "completed"
    assert resumed_model.calls_for("worker") == []
