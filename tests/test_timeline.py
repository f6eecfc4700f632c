"""The run report's timeline and DAG layout, computed from events and folded state (pure)."""

from __future__ import annotations

import pytest

from orchestrator.events import Event, ReviewFailed
from orchestrator.fold import fold
from orchestrator.models import TaskId
from orchestrator.timeline import Mark, Timeline, build_timeline, depths, layered_layout

from .test_fold import RUN, A, B, C, finished, planned, started, succeeded, validated
from .test_show import START

D = TaskId("d")


def timeline_of(events: tuple[Event, ...]) -> Timeline:
    return build_timeline(events, fold(events))


def test_an_attempt_end_without_its_start_still_ends_the_task() -> None:
    """A journal resumed in the middle can hold an attempt's end whose start it never saw."""
    timeline = timeline_of((START, planned(A), validated(A), finished(A), succeeded(A)))
    assert timeline.attempts == ()
    assert timeline.ends == {A: 4.5}  # succeeded at 5.0, the run started at 0.5
    assert timeline.rows == (A,)


def test_a_failed_review_marks_each_task_it_had_no_verdict_for() -> None:
    no_verdict = ReviewFailed(run_id=RUN, at=4.0, task_ids=(A, B), failure="budget", error="cap")
    events = (START, planned(A), planned(B), started(A, 1), finished(A), no_verdict)
    timeline = timeline_of(events)
    assert timeline.marks == (
        Mark(task_id=A, at=3.5, kind="review", label="no verdict", reason="budget: cap"),
        Mark(task_id=B, at=3.5, kind="review", label="no verdict", reason="budget: cap"),
    )
    (attempt,) = timeline.attempts
    assert (attempt.task_id, attempt.start, attempt.end, attempt.outcome) == (A, 1.5, 2.5, "done")


@pytest.mark.parametrize(
    "deps",
    [
        {A: (), B: (A,), C: (B,)},
        {C: (B,), B: (A,), A: ()},
        {B: (A,), C: (B,), A: ()},
    ],
    ids=["deps-first", "deps-last", "mixed"],
)
def test_depths_of_a_chain_in_any_order(deps: dict[TaskId, tuple[TaskId, ...]]) -> None:
    assert depths(deps) == {A: 0, B: 1, C: 2}
    layout = layered_layout(deps)
    assert (layout.columns, layout.slots) == (3, 1)
    assert layout.slot == {A: 0, B: 0, C: 0}


def test_depths_of_a_shared_dependency_count_it_once() -> None:
    deps = {D: (B, C), B: (A,), C: (A,), A: ()}
    assert depths(deps) == {A: 0, B: 1, C: 1, D: 2}
    layout = layered_layout(deps)
    assert (layout.column[D], layout.columns, layout.slots) == (2, 3, 2)
    assert {layout.slot[B], layout.slot[C]} == {0, 1}


def test_an_empty_plan_has_an_empty_layout() -> None:
    layout = layered_layout({})
    assert (layout.columns, layout.slots, depths({})) == (0, 0, {})


def test_depths_of_a_task_whose_dependencies_depend_on_each_other_listed_first() -> None:
    """d needs a and b, b needs a: b is one deeper than a, d one deeper than b."""
    assert depths({D: (A, B), B: (A,), A: ()}) == {A: 0, B: 1, D: 2}
