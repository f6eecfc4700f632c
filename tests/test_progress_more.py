"""The progress fold on the events the common runs of tests/test_live_view.py do not send:
retries, failures, merges with conflicts, replans, and an ETA over a plan that is not a DAG yet."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from orchestrator.events import (
    AnswerWritten,
    Event,
    GraphReplanned,
    MergeStarted,
    ModelCallRetried,
    ReviewDecided,
    ReviewFailed,
    RunResumed,
    TaskReady,
    ToolCalled,
    WorkspaceMerged,
)
from orchestrator.models import TaskId, TaskSpec
from orchestrator.plan import task_key
from orchestrator.progress import Progress, one_line

from .test_fold import (
    ENDED,
    RUN,
    STOPPED,
    A,
    B,
    C,
    escalated,
    failed,
    finished,
    planned,
    retried,
    skipped,
    started,
    unreviewed,
    validated,
)
from .test_show import START


def progress_of(events: Sequence[Event], **kwargs: object) -> Progress:
    progress = Progress(**kwargs)  # pyright: ignore[reportArgumentType]
    for event in events:
        progress.apply(event)
    return progress


def test_a_retried_task_keeps_why_while_it_runs_again() -> None:
    progress = progress_of((START, planned(A), started(A, 1), finished(A, "failed"), retried(A)))
    row = progress.tasks[A]
    assert (row.status, row.note, progress.retries) == ("retrying", "self_failed: fb", 1)
    progress.apply(started(A, 2))
    assert (row.status, row.attempt, row.note) == ("running", 2, "self_failed: fb")


def test_a_retry_without_feedback_notes_its_trigger_alone() -> None:
    silent = dataclasses.replace(retried(A, "review_rejected"), feedback="")
    row = progress_of((START, planned(A), silent)).tasks[A]
    assert row.note == "review_rejected"


def test_a_reviewers_rejection_is_the_tasks_note() -> None:
    def review(verdict: str, feedback: str) -> ReviewDecided:
        return ReviewDecided(run_id=RUN, at=4.0, task_id=A, verdict=verdict, feedback=feedback)

    progress = progress_of((START, planned(A), started(A, 1), finished(A)))
    progress.apply(review("retry", "cite the source"))
    assert progress.tasks[A].note == "review: retry: cite the source"
    progress.apply(review("accept", "fine"))  # an acceptance leaves the note to the outcome
    assert progress.tasks[A].note == "review: retry: cite the source"


def test_a_failed_task_ends_with_its_error() -> None:
    progress = progress_of((START, planned(A), started(A, 1), failed(A)))
    row = progress.tasks[A]
    assert (row.status, row.note, row.ended_at) == ("failed", "ModelAPIError: boom", 5.0)
    assert progress.counts().failed == 1


def test_a_top_tier_escalation_changes_no_row() -> None:
    progress = progress_of((START, planned(A), started(A, 1), finished(A, "failed")))
    before = dataclasses.replace(progress.tasks[A])
    progress.apply(escalated(A, None, trigger="failed"))
    assert progress.tasks[A] == before and progress.escalations == 0


def test_a_merge_shows_as_merging_then_its_conflicts() -> None:
    progress = progress_of((START, planned(A), started(A, 1), finished(A)))
    progress.apply(MergeStarted(run_id=RUN, at=5.0, task_id=A, commit="c1", base="b0"))
    assert progress.tasks[A].status == "merging"
    assert progress.counts().active == 1
    clean = WorkspaceMerged(run_id=RUN, at=5.5, task_id=A, commit="c1", merged=("x.py",))
    progress.apply(clean)
    assert progress.tasks[A].note == "a summary"
    progress.apply(dataclasses.replace(clean, conflicts=("x.py", "y.py"), resolve=B))
    assert progress.tasks[A].note == "merge conflicts: x.py, y.py"


def test_a_replan_drops_the_replaced_rows_and_counts_the_replan() -> None:
    replanned = GraphReplanned(
        run_id=RUN, at=6.0, replaced=(B, TaskId("gone")), added=(TaskId("b1"),)
    )
    progress = progress_of(
        (
            START,
            planned(A),
            planned(B, A),
            planned(C, B),
            validated(A, B, C),
            replanned,
            planned(TaskId("b1"), A),
            validated(A, TaskId("b1"), C, replan=True),
        )
    )
    assert list(progress.tasks) == [A, "b1", C]
    assert (progress.replans, progress.plan_complete) == (1, True)


def test_a_stopped_run_keeps_the_first_stop_reason() -> None:
    later = dataclasses.replace(STOPPED, reason="cancelled")
    progress = progress_of((START, planned(A), STOPPED, later))
    assert progress.stop_reason == "budget: spent"
    progress.apply(dataclasses.replace(ENDED, stop_reason=""))
    assert (progress.phase, progress.stop_reason, progress.finished_at) == (
        "partial",
        "budget: spent",
        9.5,
    )


def tool(is_error: bool) -> ToolCalled:
    return ToolCalled(
        run_id=RUN, at=3.0, task_id=A, tool="shell", call_id="c1", is_error=is_error, duration_ms=1
    )


@pytest.mark.parametrize(
    ("event", "status", "note"),
    [
        (tool(False), "running", "shell"),
        (tool(True), "running", "shell (error)"),
        (skipped(A, "cancelled"), "skipped", "why"),
        (unreviewed(A), "unreviewed", "no reviewer"),
        (
            ReviewFailed(run_id=RUN, at=4.0, task_ids=(A,), failure="budget", error="cap"),
            "running",
            "",
        ),
    ],
    ids=["tool", "tool-error", "skipped", "unreviewed", "review-failed"],
)
def test_a_running_tasks_row_after(event: Event, status: str, note: str) -> None:
    row = progress_of((START, planned(A), started(A, 1), event)).tasks[A]
    assert (row.status, row.note, row.ended_at) == (
        status,
        note,
        None if status == "running" else 5.0,
    )


def test_run_level_marks_count_without_adding_rows() -> None:
    retry = ModelCallRetried(
        run_id=RUN,
        at=2.0,
        role="worker",
        model="m",
        task_id=A,
        try_number=1,
        error_type="ModelAPIError",
        status_code=503,
        message="overloaded",
        delay_s=0.1,
        cooldown_s=0.0,
    )
    answered = AnswerWritten(run_id=RUN, at=8.0, answer="42")
    progress = progress_of((START, retry, retry, answered))
    assert (progress.ledger.retries, progress.answered, progress.tasks) == (2, True, {})


def test_a_task_met_after_a_resume_has_no_estimate_to_go_by() -> None:
    resumed = RunResumed(run_id=RUN, at=10.0, pid=1)
    progress = progress_of((resumed, started(B, 2)), history={"anything": 1.0})
    assert progress.tasks[B].spec is None
    assert progress.eta_s(11.0) is None


def _estimated(tid: TaskId, est: float | None, *deps: TaskId) -> Event:
    spec = TaskSpec(id=tid, instruction=f"do {tid}", deps=deps, est_latency_s=est)
    return dataclasses.replace(planned(tid), spec=spec)


def test_eta_of_a_streamed_plan_with_a_cycle_is_unknown() -> None:
    """Only a validated plan is a DAG; a task planned again may close a loop before that."""
    events = (START, _estimated(A, 2.0), _estimated(B, 3.0, A), _estimated(A, 2.0, B))
    progress = progress_of(events)
    assert progress.phase == "planning"
    assert progress.eta_s(1.0) is None
    progress.apply(_estimated(A, 2.0))  # the loop is gone again
    assert progress.eta_s(1.0) == 5.0


def test_eta_from_history_works_out_each_tasks_key_once() -> None:
    spec_b = TaskSpec(id=B, instruction="do b")
    progress = progress_of(
        (START, planned(A), planned(B), validated(A, B)),
        history={task_key(TaskSpec(id=A, instruction="do a")): 2.0, task_key(spec_b): 7.0},
    )
    assert progress.tasks[B].key is None
    assert progress.eta_s(1.0) == 7.0
    key = progress.tasks[B].key
    assert key == task_key(spec_b)
    progress.apply(TaskReady(run_id=RUN, at=1.5, task_id=B))
    assert progress.eta_s(1.0) == 7.0 and progress.tasks[B].key is key
    progress.apply(planned(B, instruction="do b, differently"))
    assert progress.tasks[B].key is None  # planned again: worked out afresh
    assert progress.eta_s(1.0) is None  # b has no history under its new key


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [("a  b\n c", 10, "a b c"), ("abcdef", 4, "abc…"), ("abcd", 4, "abcd")],
)
def test_one_line_collapses_whitespace_and_cuts(text: str, limit: int, expected: str) -> None:
    assert one_line(text, limit) == expected
