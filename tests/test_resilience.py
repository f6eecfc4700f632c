"""Engine-level fault handling with the scripted model: transport faults are the gateway's to retry,
outages fail with a named reason, and no work is ever accepted unreviewed."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import ModelAPIError, ModelBehaviorError, ModelTimeoutError
from orchestrator.events import ModelCalled
from orchestrator.llm import ModelReply, ModelRequest
from orchestrator.models import Failed, Limits, Skipped, Succeeded, TaskId, TokenUsage, Unreviewed
from orchestrator.testing import RecordingSink, ScriptedModel, tool_call
from orchestrator.tools.base import tool

from .helpers import accept_all, answer, engine, leaf, plan, task

UNAVAILABLE = ModelAPIError("service unavailable", status_code=503, retryable=True)


def counting_tool() -> tuple[object, list[str]]:
    calls: list[str] = []

    @tool
    def note(text: str) -> str:
        """Record that it ran."""
        calls.append(text)
        return "noted"

    return note, calls


async def test_resilience_a_fault_after_a_tool_call_never_runs_the_tool_again(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    """The turn after the tool call fails in transport; only that turn is sent again."""
    note, ran = counting_tool()
    scripted.script("planner", plan(task("a", tools=["note"])))
    scripted.script(
        "worker",
        tool_call("note", {"text": "x"}, call_id="c1"),
        ModelTimeoutError("read timed out", timeout_s=1.0),
        UNAVAILABLE,
        leaf("done"),
        task="a",
    )
    scripted.respond("reviewer", accept_all).respond("synthesizer", answer)
    result = await engine(scripted, tmp_path, tools=[note]).run("g")  # type: ignore[list-item]
    assert result.status == "completed" and ran == ["x"]
    assert result.results[TaskId("a")].attempts == 1  # type: ignore[union-attr]


async def test_resilience_an_outage_past_the_grace_fails_the_task_naming_it(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    scripted.script("planner", plan(task("a"), task("b", "a")))

    def down(request: ModelRequest) -> ModelReply:
        raise UNAVAILABLE

    scripted.respond("worker", down).respond("synthesizer", answer)
    sink = RecordingSink()
    limits = Limits(max_parallel=8, outage_grace_s=0.05)
    result = await engine(scripted, tmp_path, limits=limits, sinks=[sink]).run("g")
    failed = result.results[TaskId("a")]
    assert isinstance(failed, Failed) and failed.error.type == "ModelOutageError"
    assert "outage" in failed.error.message and failed.attempts == 1
    assert result.escalations == 0 and not sink.of("task_retried")
    assert isinstance(result.results[TaskId("b")], Skipped)
    assert result.status == "partial"


async def test_resilience_reviewer_faults_are_retried_and_every_task_is_reviewed(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    scripted.script("planner", plan(task("a"), task("b")))
    scripted.respond("worker", lambda r: ModelReply(text=leaf("ok").model_dump_json()))
    scripted.script("reviewer", UNAVAILABLE, UNAVAILABLE, UNAVAILABLE)
    scripted.respond("reviewer", accept_all).respond("synthesizer", answer)
    sink = RecordingSink()
    result = await engine(scripted, tmp_path, sinks=[sink]).run("g")
    assert result.status == "completed"
    assert {e.task_id for e in sink.of("review_decided")} == {"a", "b"}  # type: ignore[union-attr]
    assert all(e.verdict == "accept" for e in sink.of("review_decided"))  # type: ignore[union-attr]


async def test_resilience_a_reviewer_down_past_the_grace_leaves_work_unreviewed(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    scripted.script("planner", plan(task("a"), task("b", "a")))
    scripted.respond("worker", lambda r: ModelReply(text=leaf("ok").model_dump_json()))

    def down(request: ModelRequest) -> ModelReply:
        raise UNAVAILABLE

    scripted.respond("reviewer", down).respond("synthesizer", answer)
    sink = RecordingSink()
    limits = Limits(max_parallel=8, outage_grace_s=0.05)
    result = await engine(scripted, tmp_path, limits=limits, sinks=[sink]).run("g")
    kept = result.results[TaskId("a")]
    assert isinstance(kept, Unreviewed) and kept.summary == "ok"
    assert "outage" in kept.reason
    assert isinstance(result.results[TaskId("b")], Skipped)
    assert result.status == "partial" and not sink.of("task_succeeded")
    assert [e.task_id for e in sink.of("task_unreviewed")] == ["a"]  # type: ignore[union-attr]


async def test_resilience_invalid_reviews_are_retried_then_left_unreviewed(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    scripted.script("planner", plan(task("a")))
    scripted.respond("worker", lambda r: ModelReply(text=leaf("ok").model_dump_json()))
    scripted.respond("reviewer", lambda r: ModelReply(text="looks fine to me"))
    scripted.respond("synthesizer", answer)
    limits = Limits(max_parallel=8, max_review_failures=3)
    result = await engine(scripted, tmp_path, limits=limits).run("g")
    assert isinstance(result.results[TaskId("a")], Unreviewed)
    assert len(scripted.calls_for("reviewer")) == 3
    assert result.status == "partial"


async def test_resilience_a_verdict_missing_from_a_batch_is_asked_again(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    """The reviewer judged one of two tasks; the other goes out again instead of passing."""
    from orchestrator.agents.reviewer import ReviewOut

    from .helpers import verdict

    scripted.script("planner", plan(task("a"), task("b")))
    scripted.respond("worker", lambda r: ModelReply(text=leaf("ok").model_dump_json()))
    scripted.script("reviewer", ReviewOut(verdicts=[verdict("a", "accept")]))
    scripted.respond("reviewer", accept_all).respond("synthesizer", answer)
    engine_ = engine(scripted, tmp_path, limits=Limits(max_parallel=1))
    result = await engine_.run("g")
    assert result.status == "completed"
    assert all(isinstance(r, Succeeded) for r in result.results.values())
    assert len(scripted.calls_for("reviewer")) >= 2


async def test_resilience_an_invalid_reply_is_billed_as_wasted(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    usage = TokenUsage(input_tokens=100, output_tokens=50, requests=1)
    scripted.script("planner", plan(task("a")))
    scripted.script(
        "worker",
        ModelBehaviorError("not a report", usage=usage, model="gpt-5.4-mini"),
        leaf("ok"),
        task="a",
    )
    scripted.respond("reviewer", accept_all).respond("synthesizer", answer)
    sink = RecordingSink()
    result = await engine(scripted, tmp_path, sinks=[sink]).run("g")
    assert result.status == "completed"
    assert result.wasted_usage.tokens.input_tokens == 100
    assert result.wasted_usage.cost_usd == pytest.approx((100 * 0.75 + 50 * 4.5) / 1e6)
    assert result.usage.tokens.input_tokens >= 100
    wasted = [e for e in sink.of("model_called") if isinstance(e, ModelCalled) and e.wasted]
    assert len(wasted) == 1 and wasted[0].task_id == "a"


async def test_resilience_a_streamed_plan_that_faults_before_text_is_streamed_again(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    scripted.script("planner", UNAVAILABLE, plan(task("a")))
    scripted.respond("worker", lambda r: ModelReply(text=leaf("ok").model_dump_json()))
    scripted.respond("reviewer", accept_all).respond("synthesizer", answer)
    result = await engine(scripted, tmp_path).run("g")
    assert result.status == "completed" and result.model_retries == 1


async def test_resilience_a_non_retryable_error_is_not_retried(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    bad = ModelAPIError("bad request", status_code=400, retryable=False)
    scripted.script("planner", plan(task("a")))
    scripted.script("worker", bad, task="a")
    scripted.respond("synthesizer", answer)
    result = await engine(scripted, tmp_path).run("g")
    failed = result.results[TaskId("a")]
    assert isinstance(failed, Failed) and failed.attempts == 1 and result.model_retries == 0


async def test_resilience_waiting_out_the_api_does_not_use_up_the_attempts_time(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    """0.8 s of Retry-After inside a 0.5 s attempt: the attempt's clock stops while it waits."""
    limited = ModelAPIError("slow down", status_code=429, retryable=True, retry_after_s=0.4)
    scripted.script("planner", plan(task("a")))
    scripted.script("worker", limited, limited, leaf("ok"), task="a")
    scripted.respond("reviewer", accept_all).respond("synthesizer", answer)
    limits = Limits(max_parallel=8, task_timeout_s=0.5)
    result = await engine(scripted, tmp_path, limits=limits).run("g")
    done = result.results[TaskId("a")]
    assert isinstance(done, Succeeded) and done.attempts == 1
    assert done.duration_s >= 0.8
