from __future__ import annotations

import pytest

from orchestrator.errors import PlanValidationError
from orchestrator.models import Plan, TaskId, TaskSpec
from orchestrator.plan import Estimates, extend_graph, replan, task_key, validate_plan


def t(
    tid: str,
    *deps: str,
    tools: tuple[str, ...] = (),
    est: float | None = None,
    tier: str | None = None,
) -> TaskSpec:
    return TaskSpec(
        id=TaskId(tid),
        instruction=f"do {tid}",
        deps=tuple(TaskId(d) for d in deps),
        tools=tools,
        est_latency_s=est,
        tier_hint=tier,
    )


def plan(*tasks: TaskSpec) -> Plan:
    return Plan(goal="g", tasks=tasks)


@pytest.mark.parametrize(
    ("tasks", "message", "ids"),
    [
        ((), "no tasks", ()),
        ((t("a"), t("a")), "duplicate task ids: a", ("a",)),
        ((t("a", "zz"),), "unknown tasks zz", ("a",)),
        ((t("a", "a"),), "depends on itself", ("a",)),
        ((t("a", "b"), t("b", "c"), t("c", "a")), "dependency cycle", ("a", "b", "c")),
        ((t("a", tools=("nope",)),), "unknown tools nope", ("a",)),
        ((t("a", tier="giant"),), "unknown tier", ("a",)),
        ((TaskSpec(id=TaskId(" "), instruction="x"),), "non-empty id", (" ",)),
        ((TaskSpec(id=TaskId("a"), instruction="  "),), "without an instruction", ("a",)),
    ],
    ids=[
        "empty",
        "duplicate",
        "unknown-dep",
        "self-dep",
        "cycle",
        "unknown-tool",
        "unknown-tier",
        "blank-id",
        "blank-instruction",
    ],
)
def test_validate_plan_rejects(
    tasks: tuple[TaskSpec, ...], message: str, ids: tuple[str, ...]
) -> None:
    with pytest.raises(PlanValidationError, match=message) as info:
        validate_plan(plan(*tasks), known_tools={"word_count"}, known_tiers={"mini", "base"})
    assert sorted(info.value.task_ids) == sorted(ids)


def test_validate_plan_cycle_names_the_cycle() -> None:
    with pytest.raises(PlanValidationError) as info:
        validate_plan(plan(t("a", "c"), t("b", "a"), t("c", "b"), t("d")))
    assert set(info.value.cycle) == {"a", "b", "c"}


def test_validate_plan_orders_and_ranks_by_longest_remaining_path() -> None:
    graph = validate_plan(
        plan(t("a", est=1), t("b", "a", est=5), t("c", "a", est=1), t("d", "c", est=1))
    )
    assert graph.order.index(TaskId("a")) < graph.order.index(TaskId("b"))
    assert graph.priority[TaskId("a")] == 6
    assert graph.priority[TaskId("b")] == 5
    assert graph.priority[TaskId("c")] == 2
    assert graph.critical_path_s() == 6
    assert set(graph.edges) == {("a", "b"), ("a", "c"), ("c", "d")}


def test_validate_plan_without_estimates_ranks_by_hops() -> None:
    graph = validate_plan(plan(t("a"), t("b", "a"), t("c", "b"), t("x")))
    assert graph.priority[TaskId("a")] == 3
    assert graph.priority[TaskId("x")] == 1


def test_task_key_ignores_spacing_case_and_tool_order_only() -> None:
    base = TaskSpec(id=TaskId("a"), instruction="Count  the words\n", tools=("x", "y"))
    same = TaskSpec(id=TaskId("other"), instruction="count the words", tools=("y", "x"), deps=())
    assert task_key(base) == task_key(same)
    assert task_key(base) != task_key(
        TaskSpec(id=TaskId("a"), instruction="count the lines", tools=("x", "y"))
    )
    assert task_key(base) != task_key(
        TaskSpec(id=TaskId("a"), instruction="count the words", tools=("x",))
    )


@pytest.mark.parametrize(
    ("hint", "history", "expected"),
    [(2.0, 9.0, 2.0), (None, 9.0, 9.0), (None, None, 1.5)],
    ids=["hint-wins", "history", "default"],
)
def test_estimates_prefer_the_hint_then_history_then_the_default(
    hint: float | None, history: float | None, expected: float
) -> None:
    spec = t("a", est=hint)
    known = {} if history is None else {task_key(spec): history}
    assert Estimates(history=known, default_s=1.5).of(spec) == expected


def test_history_makes_the_slow_branch_critical() -> None:
    """Two equal-looking branches; earlier runs say `slow` takes 30 s, so it ranks first."""
    tasks = (t("fast"), t("slow"), t("end", "fast", "slow"))
    assert validate_plan(plan(*tasks)).priority[TaskId("fast")] == 2
    history = Estimates(history={task_key(tasks[1]): 30.0})
    graph = validate_plan(plan(*tasks), estimates=history)
    assert graph.priority[TaskId("slow")] == 31 > graph.priority[TaskId("fast")] == 2
    grown = extend_graph(graph, t("late"), estimates=Estimates(history={task_key(t("late")): 4}))
    assert grown.priority[TaskId("late")] == 4
    replanned = replan(graph, replace=TaskId("fast"), add=(t("f2"),), estimates=history)
    assert replanned.priority[TaskId("slow")] == 31


def test_replan_rewires_dependents_to_the_new_sinks() -> None:
    graph = validate_plan(plan(t("a"), t("b", "a"), t("c", "b")))
    new = replan(graph, replace=TaskId("b"), add=(t("b1", "a"), t("b2", "a"), t("b3", "b1")))
    assert TaskId("b") not in new.tasks
    assert set(new.tasks[TaskId("c")].deps) == {"b2", "b3"}


def test_replan_rejects_invalid_additions() -> None:
    graph = validate_plan(plan(t("a"), t("b", "a")))
    with pytest.raises(PlanValidationError, match="already exist"):
        replan(graph, replace=None, add=(t("a"),))
    with pytest.raises(PlanValidationError, match="unknown tasks"):
        replan(graph, replace=TaskId("b"), add=(t("b2", "ghost"),))
    with pytest.raises(PlanValidationError, match="cannot replace unknown"):
        replan(graph, replace=TaskId("zz"), add=(t("q"),))
    with pytest.raises(PlanValidationError, match="they replace"):
        replan(graph, replace=TaskId("b"), add=(t("b2", "b"),))
    with pytest.raises(PlanValidationError, match="must replace a task or add"):
        replan(graph, replace=None, add=())
