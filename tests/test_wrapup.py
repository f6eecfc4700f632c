"""Budget stops wrap up: dispatch stops, running attempts get a grace, the answer is written from
the held-back share, and the typed stop reason is in the result, in run_finished and every skip."""

from __future__ import annotations

from pathlib import Path

import anyio

from orchestrator.agents.planner import DagPlanner
from orchestrator.agents.reviewer import BatchReviewer
from orchestrator.agents.synthesizer import AnswerSynthesizer
from orchestrator.agents.worker import ExecutorWorker
from orchestrator.events import DispatchStopped, ModelCalled, RunFinished, TaskFailed
from orchestrator.llm import ModelReply, ModelRequest
from orchestrator.models import Budget, Limits, Skipped, TaskId, TierSpec, TokenUsage
from orchestrator.run import Engine, EngineConfig
from orchestrator.testing import RecordingSink, ScriptedModel
from orchestrator.tools.base import tool

from .helpers import FAST_RETRY, accept_all, answer, leaf, plan, task, tool_then_leaf

PRICED = (
    TierSpec(name="mini", model="gpt-5.4-mini"),
    TierSpec(name="base", model="gpt-5.4"),
    TierSpec(name="frontier", model="gpt-5.4"),
)


def _engine(model: ScriptedModel, tmp_path: Path, limits: Limits, sink: RecordingSink) -> Engine:
    return Engine(
        model,
        planner=DagPlanner(),
        worker=ExecutorWorker(),
        reviewer=BatchReviewer(),
        synthesizer=AnswerSynthesizer(),
        tools=(_hang, _noop),
        config=EngineConfig(
            ladder=PRICED,
            limits=limits,
            run_root=tmp_path / "runs",
            stream_plan=False,
            latency_history=False,
            retry=FAST_RETRY,
        ),
        sinks=(sink,),
    )


@tool
async def _hang() -> str:
    """Wait for ever (until the run's stop cuts the attempt)."""
    await anyio.sleep_forever()
    return "never"


@tool
def _noop() -> str:
    """Return at once."""
    return "done"


def _worker(request: ModelRequest) -> ModelReply:
    """Every worker call uses 2,000 tokens in and 300 out."""
    reply = ModelReply(text=leaf(f"{request.task_id} done").model_dump_json())
    return ModelReply(
        text=reply.text, usage=TokenUsage(input_tokens=2_000, output_tokens=300, requests=1)
    )


def _spent(sink: RecordingSink, *, role: str | None = None, exclude: str | None = None) -> float:
    calls = [e for e in sink.of("model_called") if isinstance(e, ModelCalled)]
    return sum(
        e.cost_usd
        for e in calls
        if (role is None or e.role == role) and (exclude is None or e.role != exclude)
    )


async def test_a_cost_stop_ends_partial_and_names_the_budget_everywhere(tmp_path: Path) -> None:
    model = ScriptedModel().script(
        "planner", plan(*(task(t) for t in "abcdef"), task("g", *"abcdef"), task("h", "g"))
    )
    model.respond("worker", _worker).respond("reviewer", accept_all)
    model.respond("synthesizer", answer)
    sink = RecordingSink()
    budget = 0.10
    limits = Limits(max_parallel=1, max_cost_usd=budget)
    result = await _engine(model, tmp_path, limits, sink).run("g")

    assert result.status == "partial"
    assert result.stop_reason == "budget: cost"
    assert "cost limit reached" in result.stop_detail
    (finished,) = [e for e in sink.of("run_finished") if isinstance(e, RunFinished)]
    assert finished.stop_reason == "budget: cost" and finished.stop_detail == result.stop_detail
    assert result.succeeded, "some work fit before the stop"
    skipped = result.skipped
    assert skipped, "the budget stopped the run before its end"
    for r in (*skipped, *result.unreviewed):
        assert r.reason.startswith("budget: cost — "), r.reason
    # The answer was written by the model, from the held-back share, and says the run stopped.
    assert result.answer.startswith("final answer\n\n---\nTask results, as recorded:")
    (synth,) = model.calls_for("synthesizer")
    prompt = "\n".join(m.content for m in synth.messages if m.role == "user")
    assert "The run stopped before every task ran (budget: cost" in prompt
    work = _spent(sink, exclude="synthesizer")
    assert work <= budget * (1 - limits.answer_share) + 1e-12
    assert result.usage.cost_usd <= budget + 1e-12
    assert _spent(sink, role="synthesizer") <= budget - work + 1e-12


async def test_the_grace_cuts_a_running_attempt_and_its_task_is_skipped(tmp_path: Path) -> None:
    """b's second call passes the call cap while a hangs in a tool: a is cut after the grace."""
    model = ScriptedModel().script(
        "planner", plan(task("a", tools=["_hang"]), task("b", tools=["_noop"]))
    )
    model.respond(
        "worker",
        lambda r: tool_then_leaf("_hang" if r.task_id == "a" else "_noop")(r),
    )
    model.respond("reviewer", accept_all).respond("synthesizer", answer)
    sink = RecordingSink()
    # 4 calls: one held back for the answer; the plan, a's and b's first turns use the rest.
    limits = Limits(max_parallel=2, max_model_calls=4, stop_grace_s=0.2)
    with anyio.fail_after(5):
        result = await _engine(model, tmp_path, limits, sink).run("g")

    assert result.stop_reason == "budget: calls"
    for tid in ("a", "b"):
        skipped = result.results[TaskId(tid)]
        assert isinstance(skipped, Skipped), skipped
        assert skipped.reason.startswith("budget: calls — ")
    assert len(model.calls) == 4 and result.answer.startswith("final answer")
    stops = [e for e in sink.of("dispatch_stopped") if isinstance(e, DispatchStopped)]
    assert [s.reason for s in stops] == ["budget: calls"]


async def test_a_stopped_run_resumes_with_a_larger_budget(tmp_path: Path) -> None:
    model = ScriptedModel().script("planner", plan(*(task(t) for t in "abcd")))
    model.respond("worker", _worker).respond("reviewer", accept_all)
    model.respond("synthesizer", answer)
    limits = Limits(max_parallel=1, max_model_calls=5)
    stopped = await _engine(model, tmp_path, limits, RecordingSink()).run("g")
    assert stopped.stop_reason == "budget: calls" and stopped.run_dir is not None
    done = {t for t, r in stopped.results.items() if not isinstance(r, Skipped)}

    again = ScriptedModel().respond("worker", _worker).respond("reviewer", accept_all)
    again.respond("synthesizer", answer)
    resumed = await _engine(again, tmp_path, Limits(max_parallel=1), RecordingSink()).resume(
        Path(stopped.run_dir).name
    )
    assert resumed.status == "completed" and resumed.stop_reason is None
    assert {r.task_id for r in again.calls_for("worker")}.isdisjoint(done)


async def test_a_task_budget_fails_that_task_only(tmp_path: Path) -> None:
    """A task's budget bounds all its attempts: a is failed, b still runs, the run goes on."""
    model = ScriptedModel().script("planner", plan(task("a"), task("b")))
    model.respond(
        "worker",
        lambda r: (
            ModelReply(text=leaf("unsure", status="failed").model_dump_json())
            if r.task_id == "a"
            else _worker(r)
        ),
    )
    model.respond("reviewer", accept_all).respond("synthesizer", answer)
    sink = RecordingSink()
    limits = Limits(max_parallel=1, task_budget=Budget(max_model_calls=2))
    result = await _engine(model, tmp_path, limits, sink).run("g")

    assert result.stop_reason is None and result.status == "partial"
    assert len(model.calls_for("worker", task="a")) == 2  # two attempts, then the cap
    (failed,) = [e for e in sink.of("task_failed") if isinstance(e, TaskFailed)]
    assert failed.task_id == "a" and "task a model call limit reached" in failed.message
    assert result.results[TaskId("b")].kind == "succeeded"


async def test_a_tier_budget_stops_escalation_into_that_tier(tmp_path: Path) -> None:
    """The base tier has no budget left: a's escalation there fails the task, not the run."""
    model = ScriptedModel().script("planner", plan(task("a"), task("b", tier="mini")))
    model.respond(
        "worker",
        lambda r: (
            ModelReply(text=leaf("?", status="ambiguous").model_dump_json())
            if r.task_id == "a"
            else _worker(r)
        ),
    )
    model.respond("reviewer", accept_all).respond("synthesizer", answer)
    sink = RecordingSink()
    limits = Limits(max_parallel=1, tier_budgets={"base": Budget(max_model_calls=0)})
    result = await _engine(model, tmp_path, limits, sink).run("g")

    assert [r.model for r in model.calls_for("worker", task="a")] == ["gpt-5.4-mini"]
    (failed,) = [e for e in sink.of("task_failed") if isinstance(e, TaskFailed)]
    assert "tier base model call limit reached" in failed.message
    assert result.results[TaskId("b")].kind == "succeeded" and result.stop_reason is None


async def test_the_answer_carries_every_recorded_result_verbatim(tmp_path: Path) -> None:
    """A synthesizer that invents a number cannot hide the recorded one: it is printed under it."""
    model = ScriptedModel().script("planner", plan(task("count"), task("other")))
    model.respond(
        "worker",
        lambda r: ModelReply(
            text=leaf(f"{r.task_id} counted", words="1234", note="x" * 5_000).model_dump_json()
        ),
    )
    model.respond("reviewer", accept_all)
    model.respond("synthesizer", lambda _: ModelReply(text="There are 9999 words."))
    result = await _engine(model, tmp_path, Limits(), RecordingSink()).run("g")
    prose, _, recorded = result.answer.partition("\n---\n")
    assert prose.strip() == "There are 9999 words."
    assert "- count: succeeded: count counted\n    words: 1234\n" in recorded
    assert "(1000 more chars in result.json)" in recorded


async def test_a_budget_that_cannot_cover_the_plan_ends_failed_and_says_so(tmp_path: Path) -> None:
    model = ScriptedModel()
    sink = RecordingSink()
    result = await _engine(model, tmp_path, Limits(max_cost_usd=0.001), sink).run("g")
    assert result.status == "failed" and result.stop_reason == "budget: cost"
    assert result.answer.startswith("No plan was made: the planner's call did not fit")
    assert model.calls == [] and result.results == {}
    (finished,) = [e for e in sink.of("run_finished") if isinstance(e, RunFinished)]
    assert finished.stop_reason == "budget: cost"


async def test_a_failed_synthesis_still_answers_with_the_recorded_results(tmp_path: Path) -> None:
    from orchestrator.errors import ModelAPIError

    model = ScriptedModel().script("planner", plan(task("a")))
    model.respond("worker", _worker).respond("reviewer", accept_all)
    model.script("synthesizer", ModelAPIError("bad request", status_code=400, retryable=False))
    result = await _engine(model, tmp_path, Limits(), RecordingSink()).run("g")
    assert result.status == "completed"
    assert result.answer.startswith("(no synthesis: ModelAPIError: bad request)")
    assert "- a: succeeded: a done" in result.answer


async def test_the_answer_shrinks_its_output_cap_to_the_held_back_share(tmp_path: Path) -> None:
    """Work used nearly everything it may: the answer's 4,096-token cap does not fit what is
    left, so the gateway halves it until it does (and the answer is still written)."""

    def costly_review(request: ModelRequest) -> ModelReply:
        usage = TokenUsage(input_tokens=9_000, output_tokens=300, requests=1)
        return ModelReply(text=accept_all(request).text, usage=usage)

    model = ScriptedModel().script("planner", plan(task("a")))
    model.respond("worker", _worker).respond("reviewer", costly_review)
    model.respond("synthesizer", answer)
    # The plan, a and its review (~$0.027) fit in 90 %; the answer's worst case at 4,096
    # tokens (~$0.063) does not fit the rest of $0.09, a smaller cap does.
    limits = Limits(max_cost_usd=0.09, answer_share=0.1)
    result = await _engine(model, tmp_path, limits, RecordingSink()).run("g")
    (synth,) = model.calls_for("synthesizer")
    assert synth.max_output_tokens is not None and 256 <= synth.max_output_tokens < 4_096
    assert result.answer.startswith("final answer")
    assert result.usage.cost_usd <= 0.09
