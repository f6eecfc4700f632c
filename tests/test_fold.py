"""The fold: each event kind's effect on `RunState`, table-driven (one event applied to a prefix)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from orchestrator.events import (
    AnswerWritten,
    AttemptFinished,
    DispatchStopped,
    EscalationDecided,
    Event,
    GraphReplanned,
    ModelCalled,
    ModelCallFailed,
    ModelCallRetried,
    PatchApplied,
    PlanRejected,
    PlanValidated,
    ReviewDecided,
    ReviewFailed,
    RunFinished,
    RunResumed,
    RunStarted,
    SkipCause,
    TaskFailed,
    TaskPlanned,
    TaskReady,
    TaskRetried,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
    TaskUnreviewed,
    ToolCalled,
)
from orchestrator.fold import Report, RunState, TaskRecord, apply, fold
from orchestrator.ledger import Ledger
from orchestrator.models import (
    ErrorInfo,
    Failed,
    FileChange,
    PatchRecord,
    RunId,
    Skipped,
    Succeeded,
    TaskId,
    TaskResult,
    TaskSpec,
    TokenUsage,
    Unreviewed,
    Usage,
)

RUN = RunId("r1")
A, B, C = TaskId("a"), TaskId("b"), TaskId("c")


# -- event builders (run id and clock fixed) ---------------------------------------------------
def spec(tid: TaskId, *deps: TaskId, instruction: str = "") -> TaskSpec:
    return TaskSpec(id=tid, instruction=instruction or f"do {tid}", deps=deps)


def planned(tid: TaskId, *deps: TaskId, tier: str = "mini", instruction: str = "") -> TaskPlanned:
    return TaskPlanned(
        run_id=RUN, at=1.0, spec=spec(tid, *deps, instruction=instruction), tier=tier
    )


def validated(*tids: TaskId, replan: bool = False, rationale: str = "why") -> PlanValidated:
    return PlanValidated(
        run_id=RUN, at=1.0, task_ids=tids, edges=(), replan=replan, rationale=rationale
    )


def started(tid: TaskId, attempt: int, tier: str = "mini") -> TaskStarted:
    return TaskStarted(run_id=RUN, at=2.0, task_id=tid, attempt=attempt, tier=tier, model="m")


def finished(
    tid: TaskId, outcome: str = "done", *, attempt: int = 1, tier: str = "mini"
) -> AttemptFinished:
    done = outcome == "done"
    return AttemptFinished(
        run_id=RUN,
        at=3.0,
        task_id=tid,
        attempt=attempt,
        tier=tier,
        outcome=outcome,
        turns=2,
        duration_ms=1500.0,
        summary=f"{tid} summary" if done else "",
        outputs={"x": "1"} if done else {},
        check_output="check ok" if done else None,
    )


def retried(tid: TaskId, trigger: str = "self_failed", note: str = "try again") -> TaskRetried:
    return TaskRetried(
        run_id=RUN,
        at=4.0,
        task_id=tid,
        tier="mini",
        attempt=1,
        trigger=trigger,
        feedback="fb",
        note=note,
    )


def escalated(
    tid: TaskId, to_tier: str | None = "base", trigger: str = "ambiguous"
) -> EscalationDecided:
    return EscalationDecided(
        run_id=RUN,
        at=4.0,
        task_id=tid,
        trigger=trigger,
        from_tier="mini",
        to_tier=to_tier,
        note="climb" if to_tier else "",
    )


def succeeded(tid: TaskId) -> TaskSucceeded:
    return TaskSucceeded(run_id=RUN, at=5.0, task_id=tid, tier="mini", attempts=1, summary="cut")


def failed(tid: TaskId) -> TaskFailed:
    return TaskFailed(
        run_id=RUN,
        at=5.0,
        task_id=tid,
        tier="frontier",
        attempts=4,
        error_type="ModelAPIError",
        message="boom",
        retryable=True,
        reason="top tier",
    )


def skipped(tid: TaskId, cause: SkipCause = "blocked", by: TaskId | None = None) -> TaskSkipped:
    return TaskSkipped(run_id=RUN, at=5.0, task_id=tid, reason="why", blocked_by=by, cause=cause)


def unreviewed(tid: TaskId, *, resumable: bool = False) -> TaskUnreviewed:
    return TaskUnreviewed(
        run_id=RUN, at=5.0, task_id=tid, reason="no reviewer", resumable=resumable
    )


def called(
    task_id: TaskId | None = A,
    *,
    role: str = "worker",
    model: str = "m-mini",
    tier: str = "mini",
    tokens_in: int = 100,
    cost: float = 0.25,
    wasted: bool = False,
    unpriced: bool = False,
    final: bool = True,
    request_model: str = "",
) -> ModelCalled:
    return ModelCalled(
        run_id=RUN,
        at=2.5,
        role=role,
        model=model,
        tier=tier,
        task_id=task_id,
        tokens_in=tokens_in,
        tokens_cached=10,
        tokens_out=20,
        tokens_reasoning=5,
        cost_usd=cost,
        duration_ms=10.0,
        requests=1,
        tokens_estimated=3,
        wasted=wasted,
        unpriced=unpriced,
        final=final,
        request_model=request_model,
    )


def state_of(events: Sequence[Event]) -> RunState:
    return fold(events)


def record_after(prefix: Sequence[Event], event: Event, tid: TaskId = A) -> TaskRecord:
    return apply(state_of(prefix), event).tasks[tid]


REPORT = Report(
    summary="a summary",
    outputs={"x": "1"},
    check_output="check ok",
    tier="mini",
    attempt=1,
    duration_s=1.5,
)
DONE_A: tuple[Event, ...] = (planned(A), started(A, 1), finished(A))
"""Task a with a done report waiting for its verdict."""


# -- task_planned -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("prefix", "event", "expected"),
    [
        pytest.param((), planned(A), TaskRecord(spec=spec(A), tier="mini"), id="fresh"),
        pytest.param(
            (planned(A), started(A, 1), finished(A, "failed"), retried(A)),
            planned(A, B, tier="base", instruction="again"),
            TaskRecord(spec=spec(A, B, instruction="again"), tier="base"),
            id="replaces_an_old_record",
        ),
        pytest.param(
            (*DONE_A, succeeded(A)),
            planned(A),
            TaskRecord(spec=spec(A), tier="mini"),
            id="replaces_a_succeeded_record",
        ),
    ],
)
def test_fold_task_planned_gives_a_fresh_record(
    prefix: tuple[Event, ...], event: TaskPlanned, expected: TaskRecord
) -> None:
    assert record_after(prefix, event) == expected


# -- plan_validated ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("prefix", "event", "order", "rationale"),
    [
        pytest.param(
            (planned(A), planned(B), planned(C)),
            validated(C, A, rationale="r"),
            [C, A],
            "r",
            id="keeps_only_listed_in_order",
        ),
        pytest.param(
            (planned(A), planned(B), validated(A, B, rationale="first"), planned(C)),
            validated(A, C, B, replan=True, rationale="second"),
            [A, C, B],
            "first",
            id="replan_keeps_the_rationale",
        ),
    ],
)
def test_fold_plan_validated_keeps_the_plans_tasks(
    prefix: tuple[Event, ...], event: PlanValidated, order: list[TaskId], rationale: str
) -> None:
    state = apply(state_of(prefix), event)
    assert list(state.tasks) == order
    assert (state.plan_complete, state.rationale) == (True, rationale)


def test_fold_plan_validated_keeps_records_as_they_were() -> None:
    state = state_of((*DONE_A, planned(B), validated(B, A)))
    assert state.tasks[A] == state_of(DONE_A).tasks[A]


# -- task_started -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("prefix", "event", "attempts", "at_tier", "tier"),
    [
        pytest.param((planned(A),), started(A, 1), 1, 1, "mini", id="first"),
        pytest.param(
            (planned(A), started(A, 1), finished(A, "failed"), retried(A)),
            started(A, 2),
            2,
            2,
            "mini",
            id="again_at_the_same_tier",
        ),
        pytest.param(
            (planned(A), started(A, 1), finished(A, "ambiguous"), escalated(A, "base")),
            started(A, 2, tier="base"),
            2,
            1,
            "base",
            id="after_escalation",
        ),
    ],
)
def test_fold_task_started_counts_attempts(
    prefix: tuple[Event, ...], event: TaskStarted, attempts: int, at_tier: int, tier: str
) -> None:
    rec = record_after(prefix, event)
    assert (rec.phase, rec.attempts, rec.attempts_at_tier, rec.tier) == (
        "running",
        attempts,
        at_tier,
        tier,
    )


# -- attempt_finished -------------------------------------------------------------------------
def test_fold_attempt_finished_done_keeps_the_report() -> None:
    rec = record_after((planned(A), started(A, 1)), finished(A))
    assert (rec.phase, rec.report, rec.result) == ("finished", REPORT, None)


@pytest.mark.parametrize(
    "outcome",
    [
        "failed",
        "ambiguous",
        "error",
        "turn_limit",
        "invalid_output",
        "timeout",
        "check_failed",
    ],
)
def test_fold_attempt_finished_otherwise_plans_the_task_again(outcome: str) -> None:
    rec = record_after((planned(A), started(A, 1)), finished(A, outcome))
    assert (rec.phase, rec.report, rec.attempts) == ("planned", None, 1)


# -- task_retried / escalation_decided --------------------------------------------------------
@pytest.mark.parametrize(
    ("trigger", "rejections"),
    [
        pytest.param("review_rejected", 1, id="review_rejected"),
        pytest.param("self_failed", 0, id="self_failed"),
        pytest.param("check_failed", 0, id="check_failed"),
    ],
)
def test_fold_task_retried_appends_the_note(trigger: str, rejections: int) -> None:
    prefix = (planned(A), started(A, 1), finished(A, "failed"), retried(A, note="first"))
    rec = record_after(prefix, retried(A, trigger, note="second"))
    assert (rec.phase, rec.feedback, rec.rejections) == ("planned", ["first", "second"], rejections)


@pytest.mark.parametrize(
    ("trigger", "rejections"),
    [
        pytest.param("ambiguous", 0, id="ambiguous"),
        pytest.param("review_rejected", 1, id="review_rejected"),
    ],
)
def test_fold_escalation_moves_the_task_up(trigger: str, rejections: int) -> None:
    prefix = (planned(A), started(A, 1), finished(A, "failed"), retried(A), started(A, 2))
    state = apply(state_of((*prefix, finished(A, "ambiguous"))), escalated(A, "base", trigger))
    rec = state.tasks[A]
    assert (rec.phase, rec.tier, rec.attempts, rec.attempts_at_tier) == ("planned", "base", 2, 0)
    assert (rec.feedback, rec.rejections) == (["try again", "climb"], rejections)
    assert state.escalations == 1


def test_fold_escalation_to_no_tier_changes_nothing_but_seq() -> None:
    prefix = (planned(A), started(A, 1), finished(A, "ambiguous"))
    before = state_of(prefix)
    after = apply(state_of(prefix), escalated(A, None))
    assert after == dataclasses.replace(before, seq=before.seq + 1)


# -- outcomes ---------------------------------------------------------------------------------
USAGE_A = Usage(
    tokens=TokenUsage(
        input_tokens=200,
        cached_input_tokens=20,
        output_tokens=40,
        reasoning_tokens=10,
        requests=2,
        estimated_tokens=6,
    ),
    cost_usd=0.5,
)
"""Two `called(A)` events."""


@pytest.mark.parametrize(
    ("prefix", "event", "phase", "result"),
    [
        pytest.param(
            (*DONE_A, called(A), called(A), called(B)),
            succeeded(A),
            "succeeded",
            Succeeded(
                task_id=A,
                summary="a summary",
                outputs={"x": "1"},
                tier="mini",
                attempts=1,
                usage=USAGE_A,
                duration_s=1.5,
            ),
            id="succeeded_from_the_report",
        ),
        pytest.param(
            (planned(A), called(A), called(A), started(A, 3, tier="frontier")),
            failed(A),
            "failed",
            Failed(
                task_id=A,
                error=ErrorInfo(type="ModelAPIError", message="boom", retryable=True),
                tier="frontier",
                attempts=4,
                usage=USAGE_A,
            ),
            id="failed",
        ),
        pytest.param(
            (planned(A),),
            skipped(A, by=B),
            "skipped",
            Skipped(task_id=A, reason="why", blocked_by=B),
            id="skipped",
        ),
        pytest.param(
            (*DONE_A, called(A), called(A)),
            unreviewed(A),
            "unreviewed",
            Unreviewed(
                task_id=A,
                reason="no reviewer",
                summary="a summary",
                outputs={"x": "1"},
                tier="mini",
                attempts=1,
                usage=USAGE_A,
            ),
            id="unreviewed_keeps_the_work",
        ),
        pytest.param(
            (planned(A),),
            failed(A),
            "failed",
            Failed(
                task_id=A,
                error=ErrorInfo(type="ModelAPIError", message="boom", retryable=True),
                tier="frontier",
                attempts=4,
            ),
            id="failed_without_calls_has_zero_usage",
        ),
    ],
)
def test_fold_outcome_sets_the_result(
    prefix: tuple[Event, ...], event: Event, phase: str, result: TaskResult
) -> None:
    state = apply(state_of(prefix), event)
    rec = state.tasks[A]
    assert (rec.phase, rec.result) == (phase, result)
    # Unreviewed work keeps its report: a resumed run may send it to review again.
    assert rec.report == (REPORT if phase == "unreviewed" else None)
    assert state.results == {A: result}


def test_fold_usage_of_a_task_without_calls_is_zero() -> None:
    assert state_of((planned(A),)).usage_of(A) == Usage()


@pytest.mark.parametrize(
    ("event", "resumable"),
    [
        pytest.param(skipped(A, "blocked", B), False, id="skipped_blocked"),
        pytest.param(skipped(A, "cancelled"), True, id="skipped_cancelled"),
        pytest.param(skipped(A, "budget"), True, id="skipped_budget"),
        pytest.param(skipped(A, "stopped"), True, id="skipped_stopped"),
        pytest.param(unreviewed(A), False, id="unreviewed"),
        pytest.param(unreviewed(A, resumable=True), True, id="unreviewed_stopped"),
    ],
)
def test_fold_terminal_event_marks_resumable(event: Event, resumable: bool) -> None:
    assert record_after(DONE_A, event).resumable is resumable


# -- run_resumed ------------------------------------------------------------------------------
ANSWERED = AnswerWritten(run_id=RUN, at=9.0, answer="the answer")
STOPPED = DispatchStopped(run_id=RUN, at=8.0, reason="budget: spent")
ENDED = RunFinished(
    run_id=RUN,
    at=9.5,
    status="partial",
    succeeded=0,
    failed=0,
    skipped=0,
    escalations=0,
    escalation_rate=0.0,
    cost_usd=0.0,
    tokens_in=0,
    tokens_cached=0,
    tokens_out=0,
    duration_ms=1.0,
)


@pytest.mark.parametrize(
    ("prefix", "phase", "answer", "has_report"),
    [
        pytest.param((planned(A), started(A, 1)), "planned", None, False, id="running"),
        pytest.param(DONE_A, "finished", "the answer", True, id="finished_stays"),
        pytest.param(
            (planned(A), skipped(A, "cancelled")), "planned", None, False, id="skipped_cancelled"
        ),
        pytest.param((planned(A), skipped(A, "budget")), "planned", None, False, id="budget"),
        pytest.param(
            (planned(A), skipped(A, "blocked", B)), "skipped", "the answer", False, id="blocked"
        ),
        pytest.param(
            (*DONE_A, unreviewed(A, resumable=True)),
            "finished",
            None,
            True,
            id="unreviewed_resumable",
        ),
        pytest.param(
            (*DONE_A, unreviewed(A)), "unreviewed", "the answer", True, id="unreviewed_final"
        ),
        pytest.param(
            (*DONE_A, succeeded(A)), "succeeded", "the answer", False, id="succeeded_stays"
        ),
        pytest.param((planned(A),), "planned", "the answer", False, id="planned_stays"),
    ],
)
def test_fold_run_resumed_puts_unfinished_work_back(
    prefix: tuple[Event, ...], phase: str, answer: str | None, has_report: bool
) -> None:
    """Only a task put back resets the answer (it will be written again)."""
    state = state_of((RunStarted(run_id=RUN, at=0.0, goal="g", ladder=("m",)), *prefix))
    for event in (STOPPED, ANSWERED, ENDED):
        apply(state, event)
    kept = state.tasks[A].result
    apply(state, RunResumed(run_id=RUN, at=10.0, pid=42))
    rec = state.tasks[A]
    assert (rec.phase, state.answer, rec.report is not None) == (phase, answer, has_report)
    assert rec.result == (kept if phase in ("skipped", "unreviewed", "succeeded") else None)
    assert (rec.resumable, state.resumes, state.status, state.stop_reason) == (False, 1, None, "")


def test_fold_run_resumed_tells_the_next_attempt_what_the_interrupted_one_did() -> None:
    """The attempt the stop cut off leaves a feedback line naming the tool calls it made."""
    state = state_of((planned(A), started(A, 1)))
    call = ToolCalled(
        run_id=RUN, at=2.0, task_id=A, tool="shell", call_id="c1", is_error=False, duration_ms=1.0
    )
    apply(state, call)
    apply(state, RunResumed(run_id=RUN, at=10.0, pid=42))
    rec = state.tasks[A]
    assert rec.phase == "planned"
    assert rec.feedback[-1].startswith("attempt 1 was interrupted when the run stopped")
    assert "shell (c1)" in rec.feedback[-1]
    apply(state, started(A, 2))
    assert rec.calls == []


# -- graph_replanned --------------------------------------------------------------------------
def test_fold_graph_replanned_removes_and_rewires() -> None:
    prefix = (
        planned(A),
        planned(B, A),
        planned(C, A, B),
        validated(A, B, C),
        planned(TaskId("a1")),
    )
    event = GraphReplanned(
        run_id=RUN,
        at=6.0,
        replaced=(A,),
        added=(TaskId("a1"),),
        rewired={B: (TaskId("a1"),), C: (TaskId("a1"), B)},
    )
    state = apply(state_of(prefix), event)
    assert list(state.tasks) == [B, C, TaskId("a1")]
    assert state.tasks[B].spec == spec(B, TaskId("a1"))
    assert state.tasks[C].spec == spec(C, TaskId("a1"), B)
    assert state.replans == 1


# -- model_called / model_call_retried --------------------------------------------------------
def _usage(tokens_in: int, cost: float, unpriced: tuple[str, ...] = ()) -> Usage:
    tokens = TokenUsage(
        input_tokens=tokens_in,
        cached_input_tokens=10,
        output_tokens=20,
        reasoning_tokens=5,
        requests=1,
        estimated_tokens=3,
    )
    return Usage(tokens=tokens, cost_usd=cost, unpriced_models=unpriced)


@pytest.mark.parametrize(
    ("event", "ledger"),
    [
        pytest.param(
            called(A),
            Ledger(
                total=_usage(100, 0.25),
                by_role={"worker": _usage(100, 0.25)},
                by_tier={("mini", "m-mini"): _usage(100, 0.25)},
                by_task={A: _usage(100, 0.25)},
                calls=1,
                calls_by_tier={"mini": 1},
                calls_by_task={A: 1},
            ),
            id="task_call",
        ),
        pytest.param(
            called(None, role="planner", tier="frontier", model="m-top"),
            Ledger(
                total=_usage(100, 0.25),
                by_role={"planner": _usage(100, 0.25)},
                by_tier={("frontier", "m-top"): _usage(100, 0.25)},
                calls=1,
                calls_by_tier={"frontier": 1},
            ),
            id="run_level_call",
        ),
        pytest.param(
            called(A, wasted=True),
            Ledger(
                total=_usage(100, 0.25),
                by_role={"worker": _usage(100, 0.25)},
                by_tier={("mini", "m-mini"): _usage(100, 0.25)},
                by_task={A: _usage(100, 0.25)},
                wasted=_usage(100, 0.25),
                calls=1,
                calls_by_tier={"mini": 1},
                calls_by_task={A: 1},
            ),
            id="wasted",
        ),
        pytest.param(
            called(A, wasted=True, final=False),
            Ledger(
                total=_usage(100, 0.25),
                by_role={"worker": _usage(100, 0.25)},
                by_tier={("mini", "m-mini"): _usage(100, 0.25)},
                by_task={A: _usage(100, 0.25)},
                wasted=_usage(100, 0.25),
                calls=0,
                calls_by_tier={"mini": 0},
                calls_by_task={A: 0},
            ),
            id="wasted_try_is_not_a_call",
        ),
        pytest.param(
            called(A, cost=0.0, unpriced=True, model="local"),
            Ledger(
                total=_usage(100, 0.0, ("local",)),
                by_role={"worker": _usage(100, 0.0, ("local",))},
                by_tier={("mini", "local"): _usage(100, 0.0, ("local",))},
                by_task={A: _usage(100, 0.0, ("local",))},
                calls=1,
                calls_by_tier={"mini": 1},
                calls_by_task={A: 1},
            ),
            id="unpriced",
        ),
        pytest.param(
            called(A, model="m-mini-2026", request_model="m-mini"),
            Ledger(
                total=_usage(100, 0.25),
                by_role={"worker": _usage(100, 0.25)},
                by_tier={("mini", "m-mini"): _usage(100, 0.25)},
                by_task={A: _usage(100, 0.25)},
                calls=1,
                calls_by_tier={"mini": 1},
                calls_by_task={A: 1},
            ),
            id="kept_under_the_requested_model",
        ),
    ],
)
def test_fold_model_called_adds_exact_usage(event: ModelCalled, ledger: Ledger) -> None:
    assert apply(RunState(), event).ledger == ledger


def test_fold_model_called_sums_calls() -> None:
    events = (
        called(A, tokens_in=7, cost=0.125),
        called(B, tokens_in=9, cost=0.5, wasted=True),
        called(A, tokens_in=11, cost=0.0, unpriced=True, model="local"),
        called(None, role="reviewer", tier="frontier", model="m-top", tokens_in=13, cost=1.0),
    )
    ledger = state_of(events).ledger
    a1, b, a2, review = (
        _usage(7, 0.125),
        _usage(9, 0.5),
        _usage(11, 0.0, ("local",)),
        _usage(13, 1.0),
    )
    assert ledger.total == a1 + b + a2 + review
    assert ledger.by_task == {A: a1 + a2, B: b}
    assert ledger.by_role == {"worker": a1 + b + a2, "reviewer": review}
    assert set(ledger.by_tier) == {("mini", "m-mini"), ("mini", "local"), ("frontier", "m-top")}
    assert (ledger.wasted, ledger.calls, ledger.total.unpriced_models) == (b, 4, ("local",))


def test_fold_model_call_retried_counts() -> None:
    retry = ModelCallRetried(
        run_id=RUN,
        at=1.0,
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
    state = state_of((retry, retry, retry))
    assert (state.ledger.retries, state.ledger.calls, state.ledger.total) == (3, 0, Usage())


# -- patches, review failures, run-level events -----------------------------------------------
def test_fold_patch_applied_is_stored_by_task_and_key() -> None:
    files = (FileChange(path="f.py", before_sha256=None, after_sha256="ab"),)
    event = PatchApplied(run_id=RUN, at=1.0, task_id=A, key="k1", files=files)
    state = state_of((planned(A), event))
    assert state.patches == {(A, "k1"): PatchRecord(task_id=A, key="k1", files=files)}


def test_fold_review_failed_counts_per_task() -> None:
    failure = ReviewFailed(run_id=RUN, at=1.0, task_ids=(A, B), failure="error", error="bad")
    state = state_of((*DONE_A, planned(B), failure, failure))
    assert (state.tasks[A].review_failures, state.tasks[B].review_failures) == (2, 2)


@pytest.mark.parametrize(
    ("events", "stop_reason", "status"),
    [
        pytest.param((STOPPED,), "budget: spent", None, id="dispatch_stopped"),
        pytest.param(
            (STOPPED, dataclasses.replace(STOPPED, reason="cancelled")),
            "budget: spent",
            None,
            id="first_stop_reason_wins",
        ),
        pytest.param((STOPPED, ENDED), "budget: spent", "partial", id="run_finished_keeps_it"),
        pytest.param(
            (dataclasses.replace(ENDED, stop_reason="cancelled"),),
            "cancelled",
            "partial",
            id="run_finished_names_it",
        ),
    ],
)
def test_fold_run_end_events(
    events: tuple[Event, ...], stop_reason: str, status: str | None
) -> None:
    state = state_of(events)
    assert (state.stop_reason, state.status) == (stop_reason, status)


def test_fold_run_started_and_answer() -> None:
    start = RunStarted(
        run_id=RUN,
        at=100.0,
        goal="g",
        ladder=("m1", "m2"),
        tiers=("mini", "base"),
        workdir="/w",
        context="ctx",
    )
    state = state_of((start, ANSWERED))
    assert (state.run_id, state.goal, state.started_at, state.workdir, state.context) == (
        RUN,
        "g",
        100.0,
        "/w",
        "ctx",
    )
    assert (state.ladder, state.tiers, state.answer, state.seq) == (
        ("m1", "m2"),
        ("mini", "base"),
        "the answer",
        2,
    )


# -- events that change nothing ---------------------------------------------------------------
@pytest.mark.parametrize(
    "event",
    [
        pytest.param(TaskReady(run_id=RUN, at=1.0, task_id=A), id="task_ready"),
        pytest.param(
            ModelCallFailed(
                run_id=RUN,
                at=1.0,
                role="worker",
                model="m",
                task_id=A,
                error_type="ModelAPIError",
                message="bad",
                retryable=False,
            ),
            id="model_call_failed",
        ),
        pytest.param(
            ReviewDecided(run_id=RUN, at=1.0, task_id=A, verdict="accept"), id="review_decided"
        ),
        pytest.param(
            PlanRejected(run_id=RUN, at=1.0, attempt=1, error="cycle"), id="plan_rejected"
        ),
        pytest.param(escalated(A, None), id="escalation_to_no_tier"),
    ],
)
def test_fold_record_only_events_bump_seq(event: Event) -> None:
    before = state_of(DONE_A)
    after = apply(state_of(DONE_A), event)
    assert after == dataclasses.replace(before, seq=before.seq + 1)


def test_fold_seq_counts_every_event() -> None:
    events = (*DONE_A, TaskReady(run_id=RUN, at=1.0, task_id=A), succeeded(A))
    assert state_of(events).seq == len(events)


def test_fold_continues_a_given_state() -> None:
    state = fold(DONE_A[:1])
    assert fold(DONE_A[1:], state) is state
    assert state == fold(DONE_A)
