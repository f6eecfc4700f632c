"""Review verdicts the happy path never meets (`supervisor_review.py`): a batch the reviewer says
nothing about for one task, a task rejected past its limit, a replan that does not validate, and a
replan that keeps the task and adds work after it. End to end with the ScriptedModel."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import anyio

from orchestrator.agents.planner import DagPlanner
from orchestrator.agents.reviewer import BatchReviewer
from orchestrator.agents.synthesizer import AnswerSynthesizer
from orchestrator.agents.worker import ExecutorWorker
from orchestrator.events import GraphReplanned, ReviewFailed
from orchestrator.llm import ModelClient
from orchestrator.models import Failed, Limits, Succeeded, TaskId
from orchestrator.roles import ReplanTask, ReviewRequest, Verdict
from orchestrator.run import Engine, EngineConfig
from orchestrator.testing import RecordingSink, ScriptedModel, review_reply

from .helpers import FAST_RETRY, LADDER, accept_all, answer, engine, leaf, plan, task, verdict


def _finish(model: ScriptedModel) -> ScriptedModel:
    return model.respond("reviewer", accept_all).respond("synthesizer", answer)


async def test_review_without_a_verdict_for_a_task_reviews_it_again(
    scripted: ScriptedModel, sink: RecordingSink, tmp_path: Path
) -> None:
    """Unjudged work is never accepted: the task goes back to the reviewer, then passes."""
    scripted.script("planner", plan(task("a")))
    scripted.script("worker", leaf("a done"), task="a")
    scripted.script("reviewer", review_reply())
    _finish(scripted)
    with anyio.fail_after(5):
        result = await engine(scripted, tmp_path, sinks=[sink]).run("g")
    assert result.status == "completed"
    assert len(scripted.calls_for("worker", "a")) == 1  # reviewed again, not run again
    assert len(scripted.calls_for("reviewer")) == 2
    (failed,) = [e for e in sink.events if isinstance(e, ReviewFailed)]
    assert failed.task_ids == ("a",)
    assert (failed.failure, failed.error) == ("error", "the reviewer gave no verdict for this task")


async def test_review_rejections_past_the_limit_fail_the_task(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    scripted.script("planner", plan(task("a"), task("b", "a")))
    scripted.script("worker", leaf("first"), leaf("second"), task="a")
    scripted.script(
        "reviewer",
        review_reply(verdict("a", "retry", "not it")),
        review_reply(verdict("a", "retry", "still not it")),
    )
    _finish(scripted)
    limits = Limits(max_parallel=8, max_reviews_per_task=1)
    with anyio.fail_after(5):
        result = await engine(scripted, tmp_path, limits=limits).run("g")
    assert result.status == "partial"
    failed = result.results[TaskId("a")]
    assert isinstance(failed, Failed)
    assert failed.error.type == "ReviewRejected"
    assert failed.error.message == "still not it"
    assert result.results[TaskId("b")].kind == "skipped"
    assert len(scripted.calls_for("worker", "a")) == 2


async def test_review_invalid_replan_is_a_rejection_with_the_reason(
    scripted: ScriptedModel, sink: RecordingSink, tmp_path: Path
) -> None:
    """New tasks naming a dependency nobody has: the task is retried, told why, and the graph
    stays as planned."""
    scripted.script("planner", plan(task("a")))
    scripted.script("worker", leaf("first"), leaf("second"), task="a")
    bad = verdict("a", "replan", "split it", new_tasks=[task("a1", "ghost")])
    scripted.script("reviewer", review_reply(bad))
    _finish(scripted)
    with anyio.fail_after(5):
        result = await engine(scripted, tmp_path, sinks=[sink]).run("g")
    assert result.status == "completed"
    assert result.replans == 0
    assert not [e for e in sink.events if isinstance(e, GraphReplanned)]
    done = result.results[TaskId("a")]
    assert isinstance(done, Succeeded) and done.summary == "second"
    retry = scripted.calls_for("worker", "a")[1]
    told = "\n".join(getattr(m, "content", "") for m in retry.messages)
    assert "split it (the proposed replan was invalid: " in told
    assert "ghost" in told


class _KeepingReviewer:
    """The default reviewer, except that a replan keeps the task and adds the new ones after it
    (`ReplanTask.keep`, which a custom reviewer may set)."""

    def __init__(self) -> None:
        self._inner = BatchReviewer()

    async def review(self, request: ReviewRequest, client: ModelClient) -> tuple[Verdict, ...]:
        verdicts = await self._inner.review(request, client)
        return tuple(replace(v, keep=True) if isinstance(v, ReplanTask) else v for v in verdicts)


async def test_review_replan_keeping_the_task_accepts_it_and_runs_the_added_work(
    scripted: ScriptedModel, sink: RecordingSink, tmp_path: Path
) -> None:
    scripted.script("planner", plan(task("a")))
    scripted.script("worker", leaf("a done"), task="a")
    scripted.script("worker", leaf("a2 done"), task="a2")
    more = verdict("a", "replan", "also check it", new_tasks=[task("a2", "a")])
    scripted.script("reviewer", review_reply(more))
    _finish(scripted)
    run = Engine(
        scripted,
        planner=DagPlanner(),
        worker=ExecutorWorker(),
        reviewer=_KeepingReviewer(),
        synthesizer=AnswerSynthesizer(),
        config=EngineConfig(
            ladder=LADDER,
            limits=Limits(max_parallel=8),
            run_root=tmp_path / "runs",
            retry=FAST_RETRY,
        ),
        sinks=(sink,),
    )
    with anyio.fail_after(5):
        result = await run.run("g")
    assert result.status == "completed"
    assert result.replans == 1
    kept = result.results[TaskId("a")]
    assert isinstance(kept, Succeeded) and kept.summary == "a done"
    added = result.results[TaskId("a2")]
    assert isinstance(added, Succeeded) and added.summary == "a2 done"
    (replanned,) = [e for e in sink.events if isinstance(e, GraphReplanned)]
    assert (replanned.replaced, replanned.added) == ((), ("a2",))
    assert len(scripted.calls_for("worker", "a")) == 1
