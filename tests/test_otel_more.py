"""OTelSink fed hand-written event sequences: resumed runs, replans, failed plans, late marks.

The engine runs in tests/test_otel.py cover the common path; here each test emits the events of
one rarer situation straight into the sink and reads the spans back from the SDK's in-memory
exporter.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from opentelemetry.util.types import AttributeValue

from orchestrator.events import (
    AttemptFinished,
    EscalationDecided,
    Event,
    GraphReplanned,
    ModelCalled,
    ModelCallRetried,
    PatchApplied,
    PlanRejected,
    PlanValidated,
    ReviewFailed,
    RunFinished,
    RunResumed,
    RunStarted,
    TaskPlanned,
    TaskReady,
    TaskStarted,
    TaskSucceeded,
    TaskUnreviewed,
)
from orchestrator.models import FileChange, RunId, TaskId, TaskSpec
from orchestrator.otel import OTelSink

RUN = RunId("r1")
A, B = TaskId("a"), TaskId("b")


class Traced:
    """One sink over an in-memory exporter; `spans` are the finished ones."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        traces = TracerProvider()
        traces.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.sink = OTelSink(tracer_provider=traces)

    def emit(self, *events: Event) -> Traced:
        for event in events:
            self.sink.emit(event)
        return self

    @property
    def spans(self) -> tuple[ReadableSpan, ...]:
        return tuple(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans if s.name == name]

    def one(self, name: str) -> ReadableSpan:
        (span,) = self.named(name)
        return span

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        sid = _sid(parent)
        return [s for s in self.spans if s.parent is not None and s.parent.span_id == sid]


def _sid(span: ReadableSpan) -> int:
    context = span.get_span_context()
    assert context is not None
    return context.span_id


def attr(span: ReadableSpan, key: str) -> AttributeValue | None:
    return (span.attributes or {}).get(key)


def marks(span: ReadableSpan, name: str) -> list[dict[str, AttributeValue]]:
    return [dict(e.attributes or {}) for e in span.events if e.name == name]


# -- event builders (run id fixed) -------------------------------------------------------------
def run_started(at: float = 1.0) -> RunStarted:
    return RunStarted(run_id=RUN, at=at, goal="g", ladder=("m-mini", "m-base"))


def run_finished(at: float = 9.0, status: str = "completed", stop_reason: str = "") -> RunFinished:
    return RunFinished(
        run_id=RUN,
        at=at,
        status=status,
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
        stop_reason=stop_reason,
    )


def planned(tid: TaskId, at: float = 2.0, tier: str = "mini") -> TaskPlanned:
    return TaskPlanned(run_id=RUN, at=at, spec=TaskSpec(id=tid, instruction=f"do {tid}"), tier=tier)


def ready(tid: TaskId, at: float = 3.0) -> TaskReady:
    return TaskReady(run_id=RUN, at=at, task_id=tid)


def started(tid: TaskId, at: float = 4.0, attempt: int = 1) -> TaskStarted:
    return TaskStarted(run_id=RUN, at=at, task_id=tid, attempt=attempt, tier="mini", model="m")


def finished(tid: TaskId, at: float = 5.0, outcome: str = "done") -> AttemptFinished:
    return AttemptFinished(
        run_id=RUN,
        at=at,
        task_id=tid,
        attempt=1,
        tier="mini",
        outcome=outcome,
        turns=2,
        duration_ms=1000.0,
    )


def succeeded(tid: TaskId, at: float = 6.0) -> TaskSucceeded:
    return TaskSucceeded(run_id=RUN, at=at, task_id=tid, tier="mini", attempts=1, summary="ok")


def validated(*tids: TaskId, at: float = 2.5, replan: bool = False) -> PlanValidated:
    return PlanValidated(run_id=RUN, at=at, task_ids=tids, edges=(), replan=replan)


def model_called(
    task_id: TaskId | None, at: float = 5.5, *, tokens_estimated: int = 0, final: bool = True
) -> ModelCalled:
    return ModelCalled(
        run_id=RUN,
        at=at,
        role="reviewer",
        model="m",
        tier="mini",
        task_id=task_id,
        tokens_in=10,
        tokens_cached=0,
        tokens_out=5,
        tokens_reasoning=0,
        cost_usd=0.01,
        duration_ms=500.0,
        tokens_estimated=tokens_estimated,
        final=final,
    )


def started_task(tid: TaskId) -> Iterable[Event]:
    return (planned(tid), ready(tid), started(tid))


# -- runs --------------------------------------------------------------------------------------
def test_a_resumed_run_opens_its_span_marked_resumed_and_notes_later_resumes() -> None:
    traced = Traced().emit(
        RunResumed(run_id=RUN, at=1.0, pid=7),
        RunResumed(run_id=RUN, at=2.0, pid=8),
        run_finished(at=3.0),
    )
    run = traced.one("invoke_agent orchestrator")
    assert attr(run, "orchestrator.resumed") is True
    assert attr(run, "orchestrator.ladder") is None
    assert run.start_time == 1_000_000_000
    assert [e.timestamp for e in run.events if e.name == "run_resumed"] == [2_000_000_000]


def test_a_run_resumed_in_the_same_process_is_a_mark_on_its_span() -> None:
    traced = Traced().emit(run_started(), RunResumed(run_id=RUN, at=2.0, pid=8), run_finished())
    run = traced.one("invoke_agent orchestrator")
    assert attr(run, "orchestrator.ladder") == ("m-mini", "m-base")
    assert attr(run, "orchestrator.resumed") is None
    assert len(marks(run, "run_resumed")) == 1


def test_a_failed_run_without_a_valid_plan_fails_its_plan_and_run_spans() -> None:
    traced = Traced().emit(
        run_started(),
        PlanRejected(run_id=RUN, at=2.0, attempt=1, error="cycle a -> a"),
        run_finished(at=3.0, status="failed", stop_reason="plan_refused"),
    )
    plan = traced.one("plan planner")
    assert plan.status.status_code is StatusCode.ERROR
    assert (plan.status.description, attr(plan, "error.type")) == ("no valid plan", "_OTHER")
    assert marks(plan, "plan_rejected") == [
        {"orchestrator.attempt": 1, "orchestrator.error": "cycle a -> a"}
    ]
    assert plan.end_time == 3_000_000_000
    run = traced.one("invoke_agent orchestrator")
    assert run.status.status_code is StatusCode.ERROR
    assert run.status.description == "the run failed"
    assert attr(run, "orchestrator.stop_reason") == "plan_refused"


def test_a_cancelled_run_ends_its_open_plan_span_without_an_error() -> None:
    traced = Traced().emit(
        run_started(),
        PlanRejected(run_id=RUN, at=2.0, attempt=1, error="bad"),
        run_finished(at=3.0, status="cancelled"),
    )
    plan = traced.one("plan planner")
    assert plan.status.status_code is StatusCode.UNSET
    assert traced.one("invoke_agent orchestrator").status.status_code is StatusCode.UNSET


# -- plans and replans -------------------------------------------------------------------------
def test_a_replan_ends_the_replaced_tasks_and_marks_the_run() -> None:
    traced = Traced().emit(
        run_started(),
        planned(A),
        planned(B),
        validated(A, B),
        ready(A),
        started(A),
        ready(B),
        validated(A, B, at=4.5),  # the same plan again (a resumed run's journal): a mark only
        GraphReplanned(run_id=RUN, at=5.0, replaced=(A,), added=(TaskId("a1"),)),
        validated(B, TaskId("a1"), at=5.0, replan=True),
        run_finished(at=6.0),
    )
    plan = traced.one("plan planner")
    assert attr(plan, "orchestrator.plan.tasks") == 2
    assert plan.end_time == 2_500_000_000
    run = traced.one("invoke_agent orchestrator")
    assert [m["orchestrator.replan"] for m in marks(run, "plan_validated")] == [False, True]
    assert marks(run, "graph_replanned") == [{"orchestrator.replaced": ("a",)}]
    task_a = traced.one("task a")
    assert (attr(task_a, "orchestrator.outcome"), task_a.end_time) == ("replaced", 5_000_000_000)
    (attempt,) = traced.children(task_a)
    assert attr(attempt, "orchestrator.outcome") == "unfinished"
    assert attempt.end_time == 5_000_000_000
    task_b = traced.one("task b")
    assert attr(task_b, "orchestrator.outcome") == "unfinished"
    assert task_b.end_time == 6_000_000_000


# -- tasks and attempts ------------------------------------------------------------------------
def test_task_planned_again_while_it_runs_keeps_its_span_and_attempt() -> None:
    traced = Traced().emit(
        run_started(),
        *started_task(A),
        planned(A, at=4.5, tier="base"),
        finished(A),
        succeeded(A),
        run_finished(),
    )
    task_a = traced.one("task a")
    assert attr(task_a, "orchestrator.tier") == "mini"
    (attempt,) = traced.children(task_a)
    assert attr(attempt, "orchestrator.outcome") == "done"
    assert attempt.end_time == 5_000_000_000


def test_task_ready_twice_opens_one_span_at_the_first() -> None:
    traced = Traced().emit(
        run_started(), planned(A), ready(A, at=3.0), ready(A, at=3.5), succeeded(A), run_finished()
    )
    (task_a,) = traced.named("task a")
    assert task_a.start_time == 3_000_000_000


def test_attempt_finished_without_a_started_attempt_opens_nothing() -> None:
    traced = Traced().emit(run_started(), planned(A), ready(A), finished(A), run_finished())
    assert traced.named("invoke_agent worker") == []
    task_a = traced.one("task a")
    assert attr(task_a, "orchestrator.outcome") == "unfinished"


def test_an_escalation_before_the_task_is_known_waits_for_its_attempt() -> None:
    """A resumed journal can decide an escalation for a task this sink never saw planned."""
    escalation = EscalationDecided(
        run_id=RUN, at=2.0, task_id=A, trigger="ambiguous", from_tier="mini", to_tier="base"
    )
    traced = Traced().emit(run_started(), escalation, started(A, at=3.0), run_finished())
    run = traced.one("invoke_agent orchestrator")
    assert marks(run, "escalation_decided") == [
        {
            "orchestrator.escalation.reason": "ambiguous",
            "orchestrator.escalation.from_tier": "mini",
            "orchestrator.tier": "base",
        }
    ]
    task_a = traced.one("task a")
    assert attr(task_a, "orchestrator.tier") is None  # no tier was planned for it
    assert task_a.start_time == 2_000_000_000
    (attempt,) = traced.children(task_a)
    assert attr(attempt, "orchestrator.escalation.reason") == "ambiguous"


def test_a_top_tier_escalation_marks_an_empty_tier() -> None:
    escalation = EscalationDecided(
        run_id=RUN, at=5.0, task_id=A, trigger="failed", from_tier="base", to_tier=None
    )
    traced = Traced().emit(run_started(), *started_task(A), escalation, run_finished())
    (mark,) = marks(traced.one("task a"), "escalation_decided")
    assert mark["orchestrator.tier"] == ""


def test_a_patch_is_marked_on_the_attempt_then_on_the_task() -> None:
    change = FileChange(path="src/x.py", before_sha256=None, after_sha256="ab")

    def patch(at: float, key: str) -> PatchApplied:
        return PatchApplied(run_id=RUN, at=at, task_id=A, key=key, files=(change,))

    traced = Traced().emit(
        run_started(),
        *started_task(A),
        patch(4.5, "p1"),
        finished(A),
        patch(5.5, "p2"),
        succeeded(A),
        run_finished(),
    )
    task_a = traced.one("task a")
    (attempt,) = traced.children(task_a)
    assert marks(attempt, "patch_applied") == [{"orchestrator.files": ("src/x.py",)}]
    assert marks(task_a, "patch_applied") == [{"orchestrator.files": ("src/x.py",)}]


def test_an_unreviewed_task_ends_with_its_reason() -> None:
    unreviewed = TaskUnreviewed(run_id=RUN, at=6.0, task_id=A, reason="reviewer unreachable")
    traced = Traced().emit(run_started(), *started_task(A), finished(A), unreviewed, run_finished())
    task_a = traced.one("task a")
    assert attr(task_a, "orchestrator.outcome") == "unreviewed"
    assert attr(task_a, "orchestrator.reason") == "reviewer unreachable"
    assert task_a.status.status_code is StatusCode.UNSET


def test_review_failed_marks_open_tasks_and_the_run_for_the_rest() -> None:
    failed = ReviewFailed(run_id=RUN, at=5.5, task_ids=(A, B), failure="budget", error="cap")
    traced = Traced().emit(
        run_started(), *started_task(A), finished(A), failed, succeeded(A), run_finished()
    )
    assert marks(traced.one("task a"), "review_failed") == [{"failure": "budget"}]
    assert marks(traced.one("invoke_agent orchestrator"), "review_failed") == [
        {"failure": "budget"}
    ]


# -- calls -------------------------------------------------------------------------------------
def test_a_call_between_attempts_hangs_under_the_task_span() -> None:
    traced = Traced().emit(
        run_started(),
        *started_task(A),
        finished(A),
        model_called(A, tokens_estimated=3, final=False),
        succeeded(A),
        run_finished(),
    )
    task_a = traced.one("task a")
    calls = [s for s in traced.children(task_a) if s.name == "chat m"]
    (call,) = calls
    assert attr(call, "orchestrator.tokens_estimated") == 3
    assert attr(call, "orchestrator.final") is False
    assert attr(call, "orchestrator.task.id") == "a"
    assert call.start_time == 5_000_000_000 and call.end_time == 5_500_000_000


@pytest.mark.parametrize(("status_code", "expected"), [(None, None), (429, 429)])
def test_a_transport_retry_records_the_status_only_when_there_was_one(
    status_code: int | None, expected: int | None
) -> None:
    retried = ModelCallRetried(
        run_id=RUN,
        at=4.5,
        role="worker",
        model="m",
        task_id=A,
        try_number=1,
        error_type="ModelTimeoutError" if status_code is None else "ModelAPIError",
        status_code=status_code,
        message="slow",
        delay_s=0.5,
        cooldown_s=0.0,
    )
    traced = Traced().emit(run_started(), *started_task(A), retried, finished(A), run_finished())
    (attempt,) = traced.named("invoke_agent worker")
    (mark,) = marks(attempt, "model_call_retried")
    assert mark.get("http.response.status_code") == expected
    assert (mark["orchestrator.try"], mark["orchestrator.delay_s"]) == (1, 0.5)


def test_a_call_for_a_task_whose_span_has_ended_hangs_under_the_run() -> None:
    traced = Traced().emit(
        run_started(), *started_task(A), finished(A), succeeded(A), model_called(A, at=7.0)
    )
    traced.emit(run_finished())
    run = traced.one("invoke_agent orchestrator")
    (call,) = traced.named("chat m")
    assert call.parent is not None and call.parent.span_id == _sid(run)
    assert attr(call, "orchestrator.task.id") == "a"
    assert attr(call, "orchestrator.final") is None
