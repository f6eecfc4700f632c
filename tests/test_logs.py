from __future__ import annotations

import io
import json
import time
from pathlib import Path

from structlog.testing import capture_logs

from orchestrator.events import RunStarted, TaskFailed, TaskStarted
from orchestrator.logs import FanOutSink, JsonlSink, StructlogSink, configure_logging, read_events
from orchestrator.models import RunId, TaskId
from orchestrator.testing import RecordingSink

RID = RunId("r1")


def test_structlog_sink_logs_kind_as_event_name_with_fields() -> None:
    with capture_logs() as logs:
        StructlogSink().emit(
            TaskStarted(
                run_id=RID,
                at=1.0,
                task_id=TaskId("a"),
                attempt=1,
                tier="mini",
                model="gpt-5.4-mini",
            )
        )
        StructlogSink().emit(
            TaskFailed(
                run_id=RID,
                at=2.0,
                task_id=TaskId("a"),
                tier="mini",
                attempts=2,
                error_type="X",
                message="m",
            )
        )
    assert logs[0]["event"] == "task_started"
    assert (
        logs[0]["task_id"] == "a" and logs[0]["tier"] == "mini" and logs[0]["log_level"] == "info"
    )
    assert logs[1]["event"] == "task_failed" and logs[1]["log_level"] == "warning"


def test_jsonl_sink_writes_one_object_per_line_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "run" / "events.jsonl"
    sink = JsonlSink(path)
    recorder = RecordingSink()
    FanOutSink([sink, recorder]).emit(RunStarted(run_id=RID, at=3.0, goal="g", ladder=("m",)))
    sink.close()
    events = read_events(path)
    assert events == [
        {
            "kind": "run_started",
            "run_id": "r1",
            "at": 3.0,
            "goal": "g",
            "ladder": ["m"],
            "tiers": [],
            "workdir": "",
            "context": "",
        }
    ]
    assert recorder.kinds() == ["run_started"]


def test_configure_logging_renders_json_when_not_a_tty() -> None:
    import structlog

    out = io.StringIO()
    configure_logging(stream=out)
    try:
        structlog.get_logger("t").info("task_started", task_id="a")
        line = json.loads(out.getvalue().strip())
        assert line["event"] == "task_started" and line["task_id"] == "a"
    finally:
        structlog.reset_defaults()


LEAKED = "sk-proj-" + "Zz9Yy8Xx7Ww6" * 4


ECHO = f'400: {{"Authorization": "Bearer {LEAKED}"}}'


def _failed_with_echo(message: str = ECHO) -> TaskFailed:
    return TaskFailed(
        run_id=RID,
        at=1.0,
        task_id=TaskId("a"),
        tier="mini",
        attempts=1,
        error_type="ModelAPIError",
        message=message,
    )


def test_jsonl_sink_redacts_credentials_before_writing(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    sink = JsonlSink(path)
    sink.emit(_failed_with_echo())
    sink.close()

    assert LEAKED not in path.read_text()
    assert read_events(path)[0]["message"] == '400: {"Authorization": "Bearer [REDACTED]"}'


def test_structlog_sink_redacts_credentials_in_fields() -> None:
    with capture_logs() as logs:
        StructlogSink().emit(_failed_with_echo())

    assert LEAKED not in json.dumps(logs)
    assert logs[0]["message"] == '400: {"Authorization": "Bearer [REDACTED]"}'


def test_configure_logging_redacts_known_secrets_from_every_line() -> None:
    """A value no pattern recognises is still redacted when the app edge names it."""
    import structlog

    out = io.StringIO()
    configure_logging(stream=out, secrets=["opaque-credential-42"])
    try:
        structlog.get_logger("t").warning("model_call_failed", message="opaque-credential-42 bad")
        assert json.loads(out.getvalue())["message"] == "[REDACTED] bad"
    finally:
        structlog.reset_defaults()


def test_jsonl_sink_redaction_keeps_a_thousand_events_cheap(tmp_path: Path) -> None:
    """Redaction runs on every line: 1,000 ordinary events stay well under a second."""
    sink = JsonlSink(tmp_path / "events.jsonl")
    event = TaskStarted(
        run_id=RID, at=1.0, task_id=TaskId("a"), attempt=1, tier="mini", model="gpt-5.4-mini"
    )
    started = time.perf_counter()
    for _ in range(1_000):
        sink.emit(event)
    sink.close()

    assert time.perf_counter() - started < 1.0


def test_jsonl_sink_redacts_key_after_an_escaped_character(tmp_path: Path) -> None:
    """In JSON text a newline is `\\n`, so a key after one follows a letter; it is still found."""
    path = tmp_path / "events.jsonl"
    sink = JsonlSink(path)
    sink.emit(_failed_with_echo(f"error:\n{LEAKED}"))
    sink.close()

    assert LEAKED not in path.read_text()


def test_configure_logging_redacts_key_after_an_escaped_character() -> None:
    import structlog

    out = io.StringIO()
    configure_logging(stream=out)
    try:
        structlog.get_logger("t").warning("model_call_failed", message=f"error:\n{LEAKED}")
        assert LEAKED not in out.getvalue()
    finally:
        structlog.reset_defaults()
