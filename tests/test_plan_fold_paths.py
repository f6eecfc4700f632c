"""Streamed plans and the fold at their edges: a repeated task id, a tool call of a task gone."""

from __future__ import annotations

import pytest

from orchestrator.errors import PlanValidationError
from orchestrator.events import GraphReplanned, TaskPlanned, TaskStarted, ToolCalled
from orchestrator.fold import fold
from orchestrator.models import RunId, TaskId, TaskSpec
from orchestrator.plan import empty_graph, extend_graph

RUN = RunId("r1")
A, B = TaskId("a"), TaskId("b")


def test_extend_graph_refuses_a_task_id_it_already_has() -> None:
    graph = extend_graph(empty_graph("g"), TaskSpec(id=A, instruction="first"))
    with pytest.raises(PlanValidationError, match="duplicate task ids: a") as info:
        extend_graph(graph, TaskSpec(id=A, instruction="again"))
    assert info.value.task_ids == ("a",)
    assert graph.tasks[A].instruction == "first"
    grown = extend_graph(graph, TaskSpec(id=B, instruction="then", deps=(A,)))
    assert (grown.order, grown.dependents) == ((A, B), {A: (B,), B: ()})
    assert graph.dependents == {A: ()}  # the graph it grew from is unchanged


def test_fold_ignores_a_tool_call_of_a_task_a_replan_removed() -> None:
    """A replan can drop a task while its attempt is still inside a tool call."""
    state = fold(
        (
            TaskPlanned(run_id=RUN, at=1.0, spec=TaskSpec(id=A, instruction="do a"), tier="mini"),
            TaskPlanned(run_id=RUN, at=1.0, spec=TaskSpec(id=B, instruction="do b"), tier="mini"),
            TaskStarted(run_id=RUN, at=2.0, task_id=A, attempt=1, tier="mini", model="m"),
            TaskStarted(run_id=RUN, at=2.0, task_id=B, attempt=1, tier="mini", model="m"),
            GraphReplanned(run_id=RUN, at=3.0, replaced=(A,), added=()),
        )
    )
    for tid in (A, B):
        call = ToolCalled(
            run_id=RUN,
            at=4.0,
            task_id=tid,
            tool="shell",
            call_id=f"c{tid}",
            is_error=tid == B,
            duration_ms=1.0,
        )
        fold((call,), state)
    assert list(state.tasks) == [B]
    assert state.tasks[B].calls == ["shell (cb, error)"]
    assert state.seq == 7
