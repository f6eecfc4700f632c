"""End-to-end engine tests with the ScriptedModel: concurrency, review verdicts, escalation, failures."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from orchestrator.agents.reviewer import ReviewOut
from orchestrator.errors import ModelAPIError, PlanValidationError
from orchestrator.events import EscalationDecided, TaskStarted
from orchestrator.llm import ModelReply, ModelRequest
from orchestrator.models import (
    Failed,
    Limits,
    RunResult,
    Skipped,
    Succeeded,
    TaskId,
    TaskSpec,
)
from orchestrator.plan import task_key
from orchestrator.store import RunStore
from orchestrator.testing import RecordingSink, ScriptedModel, tool_call
from orchestrator.toolkit import CheckOutcome, Tool
from orchestrator.tools.base import tool

from .helpers import (
    accept_all,
    answer,
    engine,
    leaf,
    plan,
    task,
    tool_then_leaf,
    verdict,
)


def gate_tools() -> tuple[Tool, Tool]:
    """`hold` blocks until `free` is called: a task holding it proves another ran meanwhile."""
    release = anyio.Event()

    @tool
    async def hold() -> str:
        """Block until released."""
        await release.wait()
        return "released"

    @tool
    def free() -> str:
        """Release whoever holds."""
        release.set()
        return "freed"

    return hold, free


def standard(model: ScriptedModel) -> ScriptedModel:
    return model.respond("reviewer", accept_all).respond("synthesizer", answer)


async def test_run_fans_out_concurrently(
    scripted: ScriptedModel, sink: RecordingSink, tmp_path: Path
) -> None:
    """Four leaves all sit inside their tool at once: only a concurrent executor gets past the barrier."""
    inside = 0
    all_in = anyio.Event()

    @tool
    async def barrier() -> str:
        """Wait until every leaf has arrived."""
        nonlocal inside
        inside += 1
        if inside == 4:
            all_in.set()
        await all_in.wait()
        return "through"

    ids = ["a", "b", "c", "d"]
    scripted.script("planner", plan(*(task(i, tools=["barrier"]) for i in ids)))
    scripted.respond("worker", tool_then_leaf("barrier"))
    standard(scripted)
    with anyio.fail_after(5):
        result = await engine(scripted, tmp_path, tools=[barrier], sinks=[sink]).run("g")
    assert result.status == "completed"
    assert {r.kind for r in result.results.values()} == {"succeeded"}
    assert inside == 4


async def test_run_starts_dependent_while_unrelated_sibling_runs(
    scripted: ScriptedModel, sink: RecordingSink, tmp_path: Path
) -> None:
    """b depends only on a; it must start (and release slow) while slow is still running."""
    hold, free = gate_tools()

    scripted.script(
        "planner", plan(task("slow", tools=["hold"]), task("a"), task("b", "a", tools=["free"]))
    )
    scripted.script("worker", tool_then_leaf("hold"), tool_then_leaf("hold"), task="slow")
    scripted.script("worker", leaf("a done"), task="a")
    scripted.script("worker", tool_then_leaf("free"), tool_then_leaf("free"), task="b")
    standard(scripted)
    with anyio.fail_after(5):
        result = await engine(scripted, tmp_path, tools=[hold, free], sinks=[sink]).run("g")
    assert result.status == "completed"
    kinds = [(e.kind, getattr(e, "task_id", None)) for e in sink.events]
    assert kinds.index(("task_started", "b")) < kinds.index(("task_succeeded", "slow"))


async def test_run_retries_with_reviewer_feedback(scripted: ScriptedModel, tmp_path: Path) -> None:
    scripted.script("planner", plan(task("a")))
    scripted.script("worker", leaf("first try"), leaf("second try"), task="a")
    scripted.script("reviewer", ReviewOut(verdicts=[verdict("a", "retry", "cite the source")]))
    standard(scripted)
    result = await engine(scripted, tmp_path).run("g")
    second = scripted.calls_for("worker", "a")[1]
    assert "cite the source" in second.messages[1].content  # type: ignore[union-attr]
    assert isinstance(result.results[TaskId("a")], Succeeded)
    assert result.results[TaskId("a")].summary == "second try"  # type: ignore[union-attr]


async def test_run_replans_mid_run_while_unrelated_branch_runs(
    scripted: ScriptedModel, sink: RecordingSink, tmp_path: Path
) -> None:
    """The reviewer replaces b by b1 → b2; c (unrelated, still running) is released by b2's tool."""
    hold, free = gate_tools()

    scripted.script("planner", plan(task("b"), task("c", tools=["hold"]), task("d", "b")))
    scripted.script("worker", leaf("b wrong"), task="b")
    scripted.script("worker", tool_then_leaf("hold"), tool_then_leaf("hold"), task="c")
    scripted.script("worker", leaf("b1 ok"), task="b1")
    scripted.script("worker", tool_then_leaf("free"), tool_then_leaf("free"), task="b2")
    scripted.script("worker", leaf("d ok"), task="d")
    scripted.script(
        "reviewer",
        ReviewOut(
            verdicts=[
                verdict(
                    "b",
                    "replan",
                    "split it",
                    new_tasks=[task("b1"), task("b2", "b1", tools=["free"])],
                )
            ]
        ),
    )
    standard(scripted)
    with anyio.fail_after(5):
        result = await engine(scripted, tmp_path, tools=[hold, free], sinks=[sink]).run("g")
    assert result.status == "completed"
    assert result.replans == 1
    assert TaskId("b") not in result.results
    assert set(result.results) == {"b1", "b2", "c", "d"}
    assert result.plan is not None and set(
        next(t for t in result.plan.tasks if t.id == "d").deps
    ) == {"b2"}
    kinds = [(e.kind, getattr(e, "task_id", None)) for e in sink.events]
    assert kinds.index(("graph_replanned", None)) < kinds.index(("task_succeeded", "c"))


async def test_run_escalates_mini_to_base_to_frontier(
    scripted: ScriptedModel, sink: RecordingSink, tmp_path: Path
) -> None:
    scripted.script("planner", plan(task("a")))
    scripted.script(
        "worker",
        leaf("unclear", status="ambiguous"),
        leaf("still unclear", status="ambiguous"),
        leaf("solved"),
        task="a",
    )
    standard(scripted)
    result = await engine(scripted, tmp_path, sinks=[sink]).run("g")
    models = [r.model for r in scripted.calls_for("worker", "a")]
    assert models == ["gpt-5.4-mini", "gpt-5.4", "gpt-5.5"]
    ups = [
        (e.from_tier, e.to_tier)
        for e in sink.of("escalation_decided")
        if isinstance(e, EscalationDecided)
    ]
    assert ups == [("mini", "base"), ("base", "frontier")]
    assert result.escalations == 2
    assert result.escalation_rate == 2.0
    third = scripted.calls_for("worker", "a")[2]
    assert "still unclear" in third.messages[1].content  # type: ignore[union-attr]
    succeeded = result.results[TaskId("a")]
    assert isinstance(succeeded, Succeeded) and succeeded.tier == "frontier"


async def test_run_repairs_a_cyclic_plan(
    scripted: ScriptedModel, sink: RecordingSink, tmp_path: Path
) -> None:
    scripted.script(
        "planner", plan(task("a", "b"), task("b", "a")), plan(task("a"), task("b", "a"))
    )
    scripted.respond("worker", lambda r: ModelReply(text=leaf().model_dump_json()))
    standard(scripted)
    result = await engine(scripted, tmp_path, sinks=[sink]).run("g")
    assert result.status == "completed"
    repair = scripted.calls_for("planner")[1]
    assert any("cycle" in getattr(m, "content", "") for m in repair.messages)
    assert sink.kinds().count("plan_rejected") == 1


async def test_run_gives_up_on_plans_that_stay_invalid(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    bad = plan(task("a", "ghost"))
    scripted.script("planner", bad, bad, bad)
    with pytest.raises(PlanValidationError, match="ghost") as info:
        await engine(scripted, tmp_path).run("g")
    assert info.value.task_ids == ("a",)
    runs = list((tmp_path / "runs").glob("*/result.json"))
    assert len(runs) == 1 and json.loads(runs[0].read_text())["status"] == "failed"


async def test_run_skips_dependents_of_a_failed_task(
    scripted: ScriptedModel, sink: RecordingSink, tmp_path: Path
) -> None:
    scripted.script("planner", plan(task("a"), task("b", "a"), task("c", "b"), task("x")))
    scripted.script(
        "worker", ModelAPIError("bad request", status_code=400, retryable=False), task="a"
    )
    scripted.script("worker", leaf("x ok"), task="x")
    standard(scripted)
    result = await engine(scripted, tmp_path, sinks=[sink]).run("g")
    assert result.status == "partial"
    assert isinstance(result.results[TaskId("a")], Failed)
    for tid in ("b", "c"):
        skipped = result.results[TaskId(tid)]
        assert isinstance(skipped, Skipped) and skipped.blocked_by == "a"
    assert isinstance(result.results[TaskId("x")], Succeeded)


async def test_run_retries_transient_api_errors_as_the_same_request(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    """503s are the gateway's to retry: no new attempt, no escalation, a retry event each."""
    err = ModelAPIError("overloaded", status_code=503, retryable=True)
    scripted.script("planner", plan(task("a")))
    scripted.script("worker", err, err, leaf("ok on mini"), task="a")
    standard(scripted)
    sink = RecordingSink()
    result = await engine(scripted, tmp_path, sinks=[sink]).run("g")
    done = result.results[TaskId("a")]
    assert isinstance(done, Succeeded) and done.tier == "mini" and done.attempts == 1
    assert result.escalations == 0 and result.model_retries == 2
    retried = sink.of("model_call_retried", "a")
    assert [e.try_number for e in retried] == [1, 2]  # type: ignore[union-attr]
    calls = scripted.calls_for("worker", "a")
    assert calls[0] == calls[1] == calls[2]  # the same request each time


async def test_run_cancel_stops_cleanly_with_partial_result(
    scripted: ScriptedModel, sink: RecordingSink, tmp_path: Path
) -> None:
    entered = anyio.Event()

    @tool
    async def forever() -> str:
        """Never returns."""
        entered.set()
        await anyio.sleep_forever()
        return "unreachable"

    scripted.script(
        "planner", plan(task("done"), task("stuck", tools=["forever"]), task("after", "stuck"))
    )
    scripted.script("worker", leaf("fine"), task="done")
    scripted.script("worker", tool_call("forever"), task="stuck")
    standard(scripted)
    eng = engine(scripted, tmp_path, tools=[forever], sinks=[sink])
    result: RunResult | None = None
    async with anyio.create_task_group() as tg:

        async def cancel_when_stuck() -> None:
            await entered.wait()
            await anyio.wait_all_tasks_blocked()
            eng.cancel()

        tg.start_soon(cancel_when_stuck)
        with anyio.fail_after(5):
            result = await eng.run("g")
    assert result is not None
    assert result.status == "cancelled"
    assert isinstance(result.results[TaskId("stuck")], Skipped)
    assert isinstance(result.results[TaskId("after")], Skipped)
    saved = json.loads(Path(result.run_dir or "", "result.json").read_text())
    assert saved["status"] == "cancelled"
    assert sink.kinds()[-1] == "run_finished"


async def test_run_check_failure_feeds_back_and_retries(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    outcomes = [
        CheckOutcome(passed=False, output="exit code 1\nassert 2 == 3"),
        CheckOutcome(passed=True, output="exit code 0"),
    ]

    async def check(command: str, workdir: Path, timeout_s: float, run_dir: Path) -> CheckOutcome:
        assert command == "pytest -q"
        return outcomes.pop(0)

    scripted.script("planner", plan(task("a", check="pytest -q")))
    scripted.script("worker", leaf("first"), leaf("second"), task="a")
    standard(scripted)
    result = await engine(scripted, tmp_path, check_runner=check).run("g")
    assert isinstance(result.results[TaskId("a")], Succeeded)
    retry = scripted.calls_for("worker", "a")[1]
    assert "assert 2 == 3" in retry.messages[1].content  # type: ignore[union-attr]


async def test_run_tool_errors_and_unknown_tools_go_back_to_the_model(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    @tool
    def explode() -> str:
        """Always raises."""
        raise RuntimeError("disk on fire")

    seen: list[str] = []

    def worker(request: ModelRequest) -> ModelReply:
        tool_msgs = [m for m in request.messages if m.role == "tool"]
        seen.extend(m.content for m in tool_msgs[len(seen) :])  # type: ignore[union-attr]
        if not tool_msgs:
            return tool_call("explode", call_id="c1")
        if len(tool_msgs) == 1:
            return tool_call("no_such_tool", call_id="c2")
        return ModelReply(text=leaf("coped").model_dump_json())

    scripted.script("planner", plan(task("a", tools=["explode"])))
    scripted.respond("worker", worker)
    standard(scripted)
    result = await engine(scripted, tmp_path, tools=[explode]).run("g")
    assert isinstance(result.results[TaskId("a")], Succeeded)
    assert "disk on fire" in seen[0]
    assert "unknown tool 'no_such_tool'" in seen[1]


async def test_run_accounts_tokens_and_cost_per_tier(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    from orchestrator.models import TokenUsage

    def worker(request: ModelRequest) -> ModelReply:
        return ModelReply(
            text=leaf().model_dump_json(),
            usage=TokenUsage(
                input_tokens=1_000_000,
                cached_input_tokens=400_000,
                output_tokens=100_000,
                requests=1,
            ),
        )

    scripted.script("planner", plan(task("a")))
    scripted.respond("worker", worker)
    standard(scripted)
    result = await engine(scripted, tmp_path).run("g")
    mini = next(t for t in result.usage_by_tier if t.tier == "mini")
    # 600k uncached * 0.75 + 400k cached * 0.075 + 100k out * 4.50, per 1M tokens
    assert mini.usage.cost_usd == pytest.approx(0.45 + 0.03 + 0.45)
    assert "gpt-5.5" in result.usage.unpriced_models
    events = [
        json.loads(line)
        for line in Path(result.run_dir or "", "events.jsonl").read_text().splitlines()
    ]
    assert events[0]["kind"] == "run_started" and events[-1]["kind"] == "run_finished"
    assert any(e["kind"] == "model_called" and e["tokens_cached"] == 400_000 for e in events)


async def test_run_budget_stops_new_work(scripted: ScriptedModel, tmp_path: Path) -> None:
    scripted.script("planner", plan(task("a"), task("b", "a")))
    scripted.script("worker", leaf("a"), task="a")
    standard(scripted)
    # 3 calls: the plan, task a, and one held back for the answer; b's call does not fit.
    result = await engine(scripted, tmp_path, limits=Limits(max_model_calls=3)).run("g")
    assert result.status == "partial"
    assert result.stop_reason == "budget: calls"
    skipped = result.results[TaskId("b")]
    assert isinstance(skipped, Skipped) and skipped.reason.startswith("budget: calls — ")
    assert len(scripted.calls_for("synthesizer")) == 1


async def test_run_started_events_carry_tier_and_model(
    scripted: ScriptedModel, sink: RecordingSink, tmp_path: Path
) -> None:
    scripted.script("planner", plan(task("a", tier="base")))
    scripted.respond("worker", lambda r: ModelReply(text=leaf().model_dump_json()))
    standard(scripted)
    await engine(scripted, tmp_path, sinks=[sink]).run("g")
    started = [e for e in sink.of("task_started") if isinstance(e, TaskStarted)]
    assert [(e.tier, e.model) for e in started] == [("base", "gpt-5.4")]


async def test_run_dispatches_streamed_tasks_before_the_plan_is_written(
    scripted: ScriptedModel, sink: RecordingSink, tmp_path: Path
) -> None:
    """The planner's stream is held after task a's JSON until a's tool runs: only early dispatch frees it."""
    started = anyio.Event()

    @tool
    def mark() -> str:
        """Record that the first task is running."""
        started.set()
        return "marked"

    scripted.script("planner", plan(task("a", tools=["mark"]), task("b"), task("c", "a")))
    scripted.pause_stream("planner", '"id":"b"', started)
    scripted.respond(
        "worker",
        lambda r: (
            tool_then_leaf("mark")(r)
            if r.task_id == "a"
            else ModelReply(text=leaf().model_dump_json())
        ),
    )
    standard(scripted)
    with anyio.fail_after(5):
        result = await engine(scripted, tmp_path, tools=[mark], sinks=[sink]).run("g")
    assert result.status == "completed"
    kinds = [(e.kind, getattr(e, "task_id", None)) for e in sink.events]
    assert kinds.index(("task_started", "a")) < kinds.index(("plan_validated", None))


async def test_run_streamed_plan_that_fails_validation_is_repaired_and_reuses_work(
    scripted: ScriptedModel, sink: RecordingSink, tmp_path: Path
) -> None:
    scripted.script("planner", plan(task("a"), task("b", "ghost")), plan(task("a"), task("b", "a")))
    scripted.script("worker", leaf("a once"), task="a")
    scripted.script("worker", leaf("b"), task="b")
    standard(scripted)
    result = await engine(scripted, tmp_path, sinks=[sink]).run("g")
    assert result.status == "completed"
    assert len(scripted.calls_for("worker", "a")) == 1  # a's result was reused, not redone
    assert "ghost" in scripted.calls_for("planner")[1].messages[1].content  # type: ignore[union-attr]


@pytest.mark.parametrize("learn", [True, False], ids=["history", "no-history"])
async def test_run_starts_the_branch_earlier_runs_found_slow_first(
    scripted: ScriptedModel, sink: RecordingSink, tmp_path: Path, learn: bool
) -> None:
    """Equal-looking roots under a cap of 1: latency history puts the slow one first."""
    runs = tmp_path / "runs"
    store = RunStore(runs)
    store.record_latencies({task_key(TaskSpec(id=TaskId("slow"), instruction="do slow")): 40.0}, 0)
    store.close()
    scripted.script("planner", plan(task("quick"), task("slow"), task("end", "quick", "slow")))
    scripted.respond("worker", lambda request: ModelReply(text=leaf("done").model_dump_json()))
    standard(scripted)
    eng = engine(
        scripted,
        tmp_path,
        sinks=[sink],
        limits=Limits(max_parallel=1),
        stream_plan=False,
        latency_history=learn,
    )
    result = await eng.run("g")
    assert result.status == "completed"
    started = [getattr(e, "task_id", None) for e in sink.of("task_started")]
    assert started == (["slow", "quick", "end"] if learn else ["quick", "slow", "end"])
    done = result.results[TaskId("quick")]
    assert isinstance(done, Succeeded) and done.duration_s > 0
    again = RunStore(runs)
    learned = again.latency_history()
    again.close()
    assert task_key(TaskSpec(id=TaskId("quick"), instruction="do quick")) in learned
