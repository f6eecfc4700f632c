"""The progress lines people watch: an API pause is shown once, then at most every few seconds."""

from __future__ import annotations

from orchestrator.events import ModelCallRetried, TaskUnreviewed
from orchestrator.models import RunId, TaskId
from orchestrator.report import ProgressSink


def retried(at: float, *, cooldown_s: float, model: str = "gpt-5.4-mini") -> ModelCallRetried:
    return ModelCallRetried(
        run_id=RunId("r"),
        at=at,
        role="worker",
        model=model,
        task_id=TaskId("a"),
        try_number=1,
        error_type="ModelAPIError",
        status_code=429,
        message="rate limited",
        delay_s=2.0,
        cooldown_s=cooldown_s,
    )


def test_report_a_pause_is_shown_once_per_quiet_period_per_model() -> None:
    lines: list[str] = []
    sink = ProgressSink(lines.append, quiet_s=5.0)
    for event in (
        retried(0.0, cooldown_s=2.0),
        retried(1.0, cooldown_s=2.0),  # same pause: quiet
        retried(1.5, cooldown_s=0.0),  # one caller's own backoff: never shown
        retried(2.0, cooldown_s=2.0, model="gpt-5.5"),  # another model: shown
        retried(6.0, cooldown_s=2.0),  # still paused, the quiet period is over
    ):
        sink.emit(event)
    assert lines == [
        "  wait   gpt-5.4-mini: HTTP 429, every call paused 2.0s",
        "  wait   gpt-5.5: HTTP 429, every call paused 2.0s",
        "  wait   gpt-5.4-mini: HTTP 429, every call paused 2.0s",
    ]


def test_report_unreviewed_work_is_shown() -> None:
    lines: list[str] = []
    ProgressSink(lines.append).emit(
        TaskUnreviewed(run_id=RunId("r"), at=0.0, task_id=TaskId("a"), reason="reviewer down")
    )
    assert lines == ["  UNREVIEWED a: reviewer down"]
