"""The run's result as a projection of its state (`outcome.py`): stop reasons from older journals,
tasks still going, the grounded answer, and the pieces `run_end.py` and `errors.py` hand on."""

from __future__ import annotations

import pytest

from orchestrator.errors import BudgetExceededError, WorkspaceError
from orchestrator.events import AttemptFinished, RunStarted, TaskPlanned, TaskSucceeded
from orchestrator.fold import RunState, fold
from orchestrator.models import RunId, StopReason, Succeeded, TaskId, TaskSpec, TierSpec
from orchestrator.outcome import build_result, grounded, stop_reason_of
from orchestrator.run_end import sole_refusal

_RUN = RunId("r1")


def _state() -> RunState:
    """Two planned tasks, `a` succeeded and `b` not ended yet."""
    events = [
        RunStarted(run_id=_RUN, at=1.0, goal="g", ladder=("m-mini",)),
        *(
            TaskPlanned(
                run_id=_RUN, at=2.0, spec=TaskSpec(id=TaskId(t), instruction=t), tier="mini"
            )
            for t in ("a", "b")
        ),
        AttemptFinished(
            run_id=_RUN,
            at=3.0,
            task_id=TaskId("a"),
            attempt=1,
            tier="mini",
            outcome="done",
            turns=1,
            duration_ms=5.0,
            summary="a ok",
            outputs={"count": "12"},
        ),
        TaskSucceeded(
            run_id=_RUN, at=4.0, task_id=TaskId("a"), tier="mini", attempts=1, summary="a ok"
        ),
    ]
    return fold(events)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", None),
        ("budget: calls", "budget: calls"),
        ("refused", "refused"),
        ("budget: call limit reached: 40 calls", "budget: calls"),
        ("budget: token limit reached", "budget: tokens"),
        ("budget: cost limit reached: $1.00", "budget: cost"),
        ("refused at the prompt", "refused"),
        ("stopped by the user", "cancelled"),
    ],
    ids=[
        "none",
        "typed",
        "typed-refused",
        "old-calls",
        "old-tokens",
        "old-cost",
        "old-refused",
        "other",
    ],
)
def test_stop_reason_of_reads_typed_and_older_free_text_reasons(
    text: str, reason: StopReason | None
) -> None:
    assert stop_reason_of(text) == reason


def test_build_result_leaves_out_tasks_of_a_run_still_going() -> None:
    result = build_result(_state(), status="running", ladder=(), run_dir="d")
    assert list(result.results) == ["a"]
    assert result.plan is not None and [t.id for t in result.plan.tasks] == ["a", "b"]


def test_build_result_counts_unended_tasks_of_a_finished_run_as_skipped() -> None:
    ladder = (TierSpec(name="mini", model="m-mini"),)
    result = build_result(_state(), status="partial", ladder=ladder, run_dir="d")
    assert isinstance(result.results[TaskId("a")], Succeeded)
    skipped = result.results[TaskId("b")]
    assert skipped.kind == "skipped" and skipped.reason == "run partial"
    assert result.escalation_rate == 0.0


def test_grounded_without_results_is_the_prose_alone() -> None:
    assert grounded("just prose\n", RunState()) == "just prose\n"


def test_grounded_appends_each_recorded_result_verbatim() -> None:
    text = grounded("answer", _state())
    assert text.splitlines() == [
        "answer",
        "",
        "---",
        "Task results, as recorded:",
        "- a: succeeded: a ok",
        "    count: 12",
    ]


def test_sole_refusal_finds_the_one_budget_error_of_nested_groups() -> None:
    refusal = BudgetExceededError("calls")
    assert sole_refusal(refusal) is refusal
    assert sole_refusal(ExceptionGroup("g", [ExceptionGroup("h", [refusal])])) is refusal


def test_sole_refusal_is_none_for_other_errors_or_several() -> None:
    refusal = BudgetExceededError("calls")
    assert sole_refusal(ValueError("x")) is None
    assert sole_refusal(ExceptionGroup("g", [refusal, ValueError("x")])) is None
    assert sole_refusal(ExceptionGroup("g", [ValueError("x")])) is None


def test_workspace_error_names_what_git_said_and_keeps_the_command() -> None:
    err = WorkspaceError("git add failed", command=["add", "-A"], stderr="fatal: bad index\n")
    assert str(err) == "git add failed: fatal: bad index"
    assert err.command == ("add", "-A")
    assert err.stderr == "fatal: bad index\n"
    silent = WorkspaceError("git commit failed", command=("commit",), stderr="  \n")
    assert str(silent) == "git commit failed: no output"
