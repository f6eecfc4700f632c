from __future__ import annotations

import io
import json
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
        {"kind": "run_started", "run_id": "r1", "at": 3.0, "goal": "g", "ladder": ["m"]}
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
