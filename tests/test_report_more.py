"""The plain-text run report and progress lines for what goes wrong (`report.py`): failed,
unreviewed and never-run tasks, a result with no run directory, failures and review verdicts."""

from __future__ import annotations

from orchestrator.events import ReviewDecided, TaskFailed
from orchestrator.models import (
    ErrorInfo,
    Failed,
    Plan,
    RunId,
    RunResult,
    Skipped,
    TaskId,
    TaskSpec,
    Unreviewed,
    Usage,
)
from orchestrator.report import ProgressSink, render_result

_RUN = RunId("r1")


def _spec(tid: str, *deps: str) -> TaskSpec:
    return TaskSpec(id=TaskId(tid), instruction=f"do {tid}", deps=tuple(TaskId(d) for d in deps))


def test_render_result_names_each_way_a_task_can_end_short() -> None:
    plan = Plan(goal="g", tasks=(_spec("f"), _spec("u"), _spec("s", "f"), _spec("n")))
    result = RunResult(
        run_id=_RUN,
        goal="g",
        status="partial",
        answer="",
        plan=plan,
        results={
            TaskId("f"): Failed(
                task_id=TaskId("f"),
                error=ErrorInfo(type="ModelAPIError", message="bad request"),
                tier="base",
                attempts=2,
            ),
            TaskId("u"): Unreviewed(
                task_id=TaskId("u"), reason="reviewer down", summary="u ok", tier="mini", attempts=1
            ),
            TaskId("s"): Skipped(task_id=TaskId("s"), reason="f failed", blocked_by=TaskId("f")),
        },
        usage=Usage(),
        run_dir=None,
    )
    lines = render_result(result).splitlines()
    assert lines[:6] == [
        "run r1: partial",
        "tasks:",
        "  [f] FAILED at base: bad request",
        "  [u] UNREVIEWED (work kept, not accepted): reviewer down",
        "  [s] <- f skipped: f failed",
        "  [n] not run",
    ]
    assert "answer:" in lines and "  (none)" in lines
    assert not any(line.startswith("events: ") for line in lines)


def test_progress_shows_a_failed_task_and_a_verdict_other_than_accept() -> None:
    lines: list[str] = []
    sink = ProgressSink(lines.append, plan_wait_s=0.0)
    sink.emit(
        ReviewDecided(run_id=_RUN, at=1.0, task_id=TaskId("a"), verdict="accept", feedback="fine")
    )
    sink.emit(
        ReviewDecided(
            run_id=_RUN, at=2.0, task_id=TaskId("a"), verdict="retry", feedback="cite\nsources"
        )
    )
    sink.emit(
        TaskFailed(
            run_id=_RUN,
            at=3.0,
            task_id=TaskId("a"),
            tier="frontier",
            attempts=3,
            error_type="ReviewRejected",
            message="still wrong",
        )
    )
    assert len(lines) == 2, lines
    assert lines[0].startswith("  review a: retry cite")
    assert "\n" not in lines[0]
    assert lines[1].startswith("  FAILED a [frontier]")
    assert lines[1].endswith("still wrong")
