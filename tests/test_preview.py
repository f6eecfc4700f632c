"""Previewing a plan before spending: the cost estimate, `Engine.plan`, `run(plan=)` and `on_plan`."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from orchestrator.agents.planner import DagPlanner
from orchestrator.agents.reviewer import BatchReviewer
from orchestrator.agents.synthesizer import AnswerSynthesizer
from orchestrator.agents.worker import ExecutorWorker
from orchestrator.errors import ConfigError, PlanValidationError, RunAbortedError
from orchestrator.escalation import EscalationPolicy
from orchestrator.events import DispatchStopped, EventSink, TaskSkipped
from orchestrator.llm import ModelReply, ModelRequest
from orchestrator.models import (
    Limits,
    Plan,
    RunResult,
    Skipped,
    Succeeded,
    TaskId,
    TaskSpec,
    TierSpec,
    TokenUsage,
)
from orchestrator.plan import task_key
from orchestrator.preview import (
    OVERHEAD_KEY,
    Accept,
    CostModel,
    EditPlan,
    HistoricCost,
    OnPlan,
    PlanDecision,
    PlanPreview,
    Refuse,
    estimate_plan,
)
from orchestrator.pricing import Price, PriceTable
from orchestrator.run import Engine, EngineConfig
from orchestrator.store import RunStore
from orchestrator.testing import RecordingSink, ScriptedModel
from orchestrator.tools.base import tool

from .helpers import FAST_RETRY, LADDER, accept_all, answer, leaf, plan, task

PRICES = PriceTable.default(**{"gpt-5.5": Price(input=5.0, cached_input=0.5, output=30.0)})
"""The test ladder's top model is priced too, so review, synthesis and planning cost money."""
WORK_USAGE = TokenUsage(input_tokens=20_000, output_tokens=2_000, requests=1)


@tool
def stamp(text: str) -> str:
    """Stamp a text."""
    return f"[{text}]"


def build(
    model: ScriptedModel,
    tmp_path: Path,
    *,
    on_plan: OnPlan | None = None,
    sinks: Sequence[EventSink] = (),
) -> Engine:
    return Engine(
        model,
        planner=DagPlanner(),
        worker=ExecutorWorker(),
        reviewer=BatchReviewer(),
        synthesizer=AnswerSynthesizer(),
        config=EngineConfig(
            ladder=LADDER,
            limits=Limits(max_parallel=8),
            run_root=tmp_path / "runs",
            prices=PRICES,
            retry=FAST_RETRY,
        ),
        tools=(stamp,),
        sinks=sinks,
        on_plan=on_plan,
    )


def work(request: ModelRequest) -> ModelReply:
    """Every executor call reports done with the same, fixed usage."""
    return ModelReply(text=leaf(f"{request.task_id} done").model_dump_json(), usage=WORK_USAGE)


def scripted_run(model: ScriptedModel) -> ScriptedModel:
    """Workers, reviewer and synthesizer answer whatever the plan holds."""
    return (
        model.respond("worker", work).respond("reviewer", accept_all).respond("synthesizer", answer)
    )


THREE = plan(task("a"), task("b", "a"), task("c", tools=["stamp"]))


def cost_model(policy: EscalationPolicy | None = None) -> CostModel:
    return CostModel(
        ladder=LADDER,
        top=LADDER[-1],
        limits=Limits(),
        policy=policy or EscalationPolicy(),
        prices=PRICES,
    )


def spec(tid: str, *deps: str, tools: Sequence[str] = (), tier: str | None = None) -> TaskSpec:
    return TaskSpec(
        id=TaskId(tid),
        instruction=f"do {tid}",
        deps=tuple(map(TaskId, deps)),
        tools=tuple(tools),
        tier_hint=tier,
    )


def goal_plan(*tasks: TaskSpec) -> Plan:
    return Plan(goal="g", tasks=tasks)


# -- the estimate (pure) ---------------------------------------------------------------------


def test_estimate_plan_without_history_is_an_ordered_range_per_task_and_in_total() -> None:
    tasks = (spec("a"), spec("b", "a", tools=["shell"]), spec("c", tier="frontier"))
    estimate = estimate_plan(goal_plan(*tasks), cost_model())
    assert [t.task_id for t in estimate.tasks] == ["a", "b", "c"]
    assert [t.tier for t in estimate.tasks] == ["mini", "mini", "frontier"]
    for t in estimate.tasks:
        assert t.basis == "model"
        assert 0 < t.low_usd <= t.expected_usd <= t.high_usd
    assert estimate.overhead_basis == "model"
    assert estimate.low_usd == pytest.approx(
        sum(t.low_usd for t in estimate.tasks) + estimate.overhead.low_usd
    )
    assert estimate.high_usd == pytest.approx(
        sum(t.high_usd for t in estimate.tasks) + estimate.overhead.high_usd
    )
    assert estimate.low_usd <= estimate.expected_usd <= estimate.high_usd
    assert estimate.unpriced_models == ()


def test_estimate_plan_high_covers_every_attempt_the_policy_allows() -> None:
    """The high case is linear in attempts per tier and climbs from the start tier only."""
    one = estimate_plan(goal_plan(spec("a")), cost_model(EscalationPolicy(max_attempts_per_tier=1)))
    three = estimate_plan(
        goal_plan(spec("a")), cost_model(EscalationPolicy(max_attempts_per_tier=3))
    )
    assert three.tasks[0].high_usd == pytest.approx(3 * one.tasks[0].high_usd)
    assert three.tasks[0].low_usd == pytest.approx(one.tasks[0].low_usd)
    top_only = estimate_plan(goal_plan(spec("a", tier="frontier")), cost_model())
    from_bottom = estimate_plan(goal_plan(spec("a")), cost_model())
    assert top_only.tasks[0].high_usd < from_bottom.tasks[0].high_usd


def test_estimate_plan_takes_a_known_task_from_history() -> None:
    known, new = spec("a"), spec("b")
    seen = HistoricCost(samples=3, low_usd=0.01, high_usd=0.04, usd=0.02, tier="base")
    overhead = HistoricCost(samples=3, low_usd=0.001, high_usd=0.002, usd=0.0015)
    history = {task_key(known): seen, OVERHEAD_KEY: overhead}
    estimate = estimate_plan(goal_plan(known, new), cost_model(), history=history)
    first, second = estimate.tasks
    assert first.basis == "history" and first.samples == 3
    assert (first.low_usd, first.expected_usd, first.high_usd) == pytest.approx((0.008, 0.02, 0.05))
    assert second.basis == "model"
    assert estimate.overhead_basis == "history"
    assert estimate.overhead.expected_usd == pytest.approx(2 * 0.0015)


def test_estimate_plan_names_the_models_it_could_not_price() -> None:
    ladder = (TierSpec(name="cheap", model="no-such-model"), *LADDER[1:])
    model = CostModel(
        ladder=ladder,
        top=ladder[-1],
        limits=Limits(),
        policy=EscalationPolicy(),
        prices=PriceTable.default(),
    )
    estimate = estimate_plan(goal_plan(spec("a")), model)
    assert estimate.unpriced_models == ("gpt-5.5", "no-such-model")


def test_preview_render_shows_the_dag_each_estimate_and_the_total() -> None:
    tasks = (spec("fetch", tools=["shell"]), spec("sum", "fetch"))
    preview = PlanPreview(
        goal="g", plan=goal_plan(*tasks), estimate=estimate_plan(goal_plan(*tasks), cost_model())
    )
    text = preview.render()
    lines = text.splitlines()
    fetch = next(line for line in lines if line.strip().startswith("fetch "))
    total = next(line for line in lines if line.startswith("total: "))
    assert "shell" in fetch and "mini" in fetch and " to " in fetch and "model" in fetch
    assert "sum" in text and "do sum" in text
    assert f"${preview.estimate.high_usd:.4f}" in total


# -- the cost history (store) ----------------------------------------------------------------


def test_store_adds_the_cost_table_to_an_index_from_before(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    root.mkdir()
    old = sqlite3.connect(root / "runs.sqlite3")
    old.execute(
        "CREATE TABLE runs (run_id TEXT PRIMARY KEY, goal TEXT NOT NULL, status TEXT NOT NULL, started_at REAL NOT NULL, finished_at REAL, cost_usd REAL, tasks INTEGER, escalations INTEGER, run_dir TEXT NOT NULL)"
    )
    old.commit()
    old.close()
    store = RunStore(root)
    try:
        store.record_costs({"k": (0.5, "mini")}, 1.0)
        store.record_costs({"k": (1.5, "base")}, 2.0)
        seen = store.cost_history()["k"]
    finally:
        store.close()
    assert (seen.samples, seen.low_usd, seen.high_usd, seen.usd, seen.tier) == (
        2,
        0.5,
        1.5,
        1.0,
        "base",
    )


# -- the engine ------------------------------------------------------------------------------


async def test_engine_plan_executes_nothing_and_creates_no_run_directory(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    scripted.script("planner", THREE)
    preview = await build(scripted, tmp_path).plan("g")
    assert [c.request.role for c in scripted.calls] == ["planner"]
    assert not (tmp_path / "runs").exists()
    assert [t.id for t in preview.plan.tasks] == ["a", "b", "c"]
    assert {t.basis for t in preview.estimate.tasks} == {"model"}
    assert preview.estimate.planning_usd > 0
    assert preview.estimate.low_usd <= preview.estimate.expected_usd <= preview.estimate.high_usd


async def test_engine_plan_repairs_an_invalid_plan_before_the_preview(
    scripted: ScriptedModel, sink: RecordingSink, tmp_path: Path
) -> None:
    scripted.script("planner", plan(task("a", "ghost")), THREE)
    preview = await build(scripted, tmp_path, sinks=[sink]).plan("g")
    assert len(preview.plan.tasks) == 3
    assert sink.kinds().count("plan_rejected") == 1
    assert not (tmp_path / "runs").exists()


async def test_engine_run_with_a_previewed_plan_does_not_plan_again(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    scripted.script("planner", THREE)
    engine = build(scripted_run(scripted), tmp_path)
    preview = await engine.plan("g")
    result = await engine.run("g", plan=preview.plan)
    assert result.status == "completed"
    assert len(scripted.calls_for("planner")) == 1
    assert result.plan is not None and {t.id for t in result.plan.tasks} == {"a", "b", "c"}


async def test_engine_run_with_an_invalid_plan_is_a_plan_validation_error(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    bad = goal_plan(spec("a", "b"), spec("b", "a"))
    with pytest.raises(PlanValidationError, match="cycle"):
        await build(scripted, tmp_path).run("g", plan=bad)
    assert scripted.calls == []


async def test_on_plan_refuse_executes_nothing_and_ends_cancelled(
    scripted: ScriptedModel, sink: RecordingSink, tmp_path: Path
) -> None:
    seen: list[PlanPreview] = []

    def refuse(preview: PlanPreview) -> PlanDecision:
        seen.append(preview)
        return Refuse("too dear")

    scripted.script("planner", THREE)
    result = await build(scripted, tmp_path, on_plan=refuse, sinks=[sink]).run("g")
    assert [c.request.role for c in scripted.calls] == ["planner"]
    assert result.status == "cancelled" and result.stop_reason == "refused"
    assert len(seen) == 1 and [e.task_id for e in seen[0].estimate.tasks] == ["a", "b", "c"]
    assert set(result.results) == {"a", "b", "c"}
    for r in result.results.values():
        assert isinstance(r, Skipped) and "refused" in r.reason and "too dear" in r.reason
    stops = [e for e in sink.events if isinstance(e, DispatchStopped)]
    assert [(e.reason, e.detail) for e in stops] == [("refused", "too dear")]
    skips = [e for e in sink.events if isinstance(e, TaskSkipped)]
    assert {e.cause for e in skips} == {"refused"}
    journal = (Path(str(result.run_dir)) / "events.jsonl").read_text().splitlines()
    kinds = [json.loads(line)["kind"] for line in journal]
    assert "task_started" not in kinds and kinds.count("task_skipped") == 3
    assert kinds[-1] == "run_finished"


async def test_on_plan_edit_runs_the_edited_plan(scripted: ScriptedModel, tmp_path: Path) -> None:
    async def edit(preview: PlanPreview) -> PlanDecision:
        kept = tuple(t for t in preview.plan.tasks if t.id != "c")
        return EditPlan(Plan(goal=preview.goal, tasks=kept))

    scripted.script("planner", THREE)
    result = await build(scripted_run(scripted), tmp_path, on_plan=edit).run("g")
    assert result.status == "completed"
    assert set(result.results) == {"a", "b"}
    assert {r.task_id for r in scripted.calls_for("worker")} == {"a", "b"}


async def test_on_plan_invalid_edit_fails_the_run(scripted: ScriptedModel, tmp_path: Path) -> None:
    def edit(preview: PlanPreview) -> PlanDecision:
        return EditPlan(goal_plan(spec("a", "ghost")))

    scripted.script("planner", THREE)
    with pytest.raises(PlanValidationError, match="ghost"):
        await build(scripted, tmp_path, on_plan=edit).run("g")
    assert scripted.calls_for("worker") == []


async def test_on_plan_accept_runs_the_plan_after_the_decision(
    scripted: ScriptedModel, sink: RecordingSink, tmp_path: Path
) -> None:
    """The plan is not streamed: nothing is planned in the journal before the decision."""
    kinds_at_decision: list[str] = []

    async def accept(preview: PlanPreview) -> PlanDecision:
        kinds_at_decision.extend(sink.kinds())
        return Accept()

    scripted.script("planner", THREE)
    result = await build(scripted_run(scripted), tmp_path, on_plan=accept, sinks=[sink]).run("g")
    assert result.status == "completed"
    assert "task_planned" not in kinds_at_decision and "task_started" not in kinds_at_decision
    assert all(isinstance(r, Succeeded) for r in result.results.values())


async def test_on_plan_returning_something_else_is_a_config_error(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    def confused(preview: PlanPreview) -> PlanDecision:
        return True  # type: ignore[return-value]  # pyright: ignore[reportReturnType]

    scripted.script("planner", THREE)
    with pytest.raises(RunAbortedError) as caught:
        await build(scripted, tmp_path, on_plan=confused).run("g")
    assert isinstance(caught.value.__cause__, ConfigError)
    assert scripted.calls_for("worker") == []


async def test_engine_plan_expected_cost_from_history_matches_a_replayed_run(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    """After one run, the same goal's estimate comes from history and is within ±25 % of what
    the same script costs when run again."""
    scripted.script("planner", THREE, THREE, THREE)
    engine = build(scripted_run(scripted), tmp_path)
    first = await engine.run("g")
    assert first.status == "completed"
    preview = await engine.plan("g")
    second = await engine.run("g")
    estimate = preview.estimate
    assert {t.basis for t in estimate.tasks} == {"history"}
    assert estimate.overhead_basis == "history"
    assert estimate.low_usd <= estimate.expected_usd <= estimate.high_usd
    assert estimate.expected_usd == pytest.approx(second.usage.cost_usd, rel=0.25)
    assert_worker_costs_learned(first, estimate.tasks[0].expected_usd)


def assert_worker_costs_learned(result: RunResult, expected_usd: float) -> None:
    """The history holds what the task's calls cost (`RunResult.usage_by_task`)."""
    assert result.usage_by_task[TaskId("a")].cost_usd == pytest.approx(expected_usd)


async def test_refused_run_runs_its_plan_when_resumed(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    """Refusing ends the run cancelled, and a cancelled run resumes: without planning again."""
    scripted.script("planner", THREE)
    refused = await build(scripted, tmp_path, on_plan=lambda _: Refuse("later")).run("g")
    resumed = await build(scripted_run(scripted), tmp_path).resume(refused.run_id)
    assert resumed.status == "completed"
    assert len(scripted.calls_for("planner")) == 1
    assert {r.task_id for r in scripted.calls_for("worker")} == {"a", "b", "c"}
