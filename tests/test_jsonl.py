"""`orchestrator run --json`: one JSON event per line (the journal's encoding plus `v`), flushed
per line, documented in docs/jsonl.md; then the real CLI in a pipe."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import subprocess
import typing
from pathlib import Path
from typing import Any, cast

import pytest

from orchestrator.events import Event, TaskFailed
from orchestrator.journal import decode, encode
from orchestrator.jsonl import JSONL_VERSION, JsonLinesSink, json_line, result_line
from orchestrator.models import RunResult, Usage
from orchestrator.store import result_json

from .cli_watch import cli_args, cli_env, task_ids, watched_server
from .test_fold import RUN, A, called, planned, started
from .test_show import PARTIAL_RUN, START

DOCS = Path(__file__).resolve().parent.parent / "docs" / "jsonl.md"
KEY = "sk-abcdefghijklmnopqrstuvwxyz012345"
LEAKY = TaskFailed(
    run_id=RUN,
    at=5.0,
    task_id=A,
    tier="mini",
    attempts=1,
    error_type="ModelAPIError",
    message=f"401 for\nAuthorization: Bearer {KEY}",
)


# -- the line -----------------------------------------------------------------------------------
@pytest.mark.parametrize("event", [*PARTIAL_RUN, LEAKY], ids=lambda e: cast("Event", e).kind)
def test_jsonl_line_is_the_journal_encoding_plus_the_version(event: Event) -> None:
    line = json_line(event)
    assert "\n" not in line
    data = json.loads(line)
    assert data == json.loads(encode(event)) | {"v": JSONL_VERSION}
    assert list(data)[:3] == ["kind", "run_id", "at"]
    assert decode(line) == decode(encode(event))  # a reader gets the typed event back


def test_jsonl_line_redacts_credentials() -> None:
    line = json_line(LEAKY)
    assert KEY not in line and "[REDACTED]" in line


class _Stream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushed: list[str] = []

    def flush(self) -> None:
        self.flushed.append(self.getvalue())


def test_jsonl_result_line_is_the_result_json_on_one_line_with_kind_and_version() -> None:
    result = RunResult(
        run_id=RUN,
        goal="g",
        status="failed",
        answer="none",
        plan=None,
        results={},
        usage=Usage(),
        stop_detail=f"api_key={KEY}\nsecond line",
    )
    line = result_line(result)
    assert "\n" not in line and KEY not in line
    data = json.loads(line)
    assert list(data)[:2] == ["kind", "v"] and (data["kind"], data["v"]) == ("result", 1)
    assert {k: v for k, v in data.items() if k not in ("kind", "v")} == json.loads(
        result_json(result)
    )


def test_jsonl_sink_flushes_each_line() -> None:
    stream = _Stream()
    sink = JsonLinesSink(stream)
    for event in (START, planned(A)):
        sink.emit(event)
    first, second = (json_line(START) + "\n", json_line(planned(A)) + "\n")
    assert stream.flushed == [first, first + second]


def test_jsonl_sink_streams_a_run_not_a_previews_planning() -> None:
    """`--plan-only` previews a plan without a run: its planner's events are not a stream."""
    stream = io.StringIO()
    sink = JsonLinesSink(stream)
    for event in (called(None, role="planner"), START, called(A)):
        sink.emit(event)
    assert [json.loads(line)["kind"] for line in stream.getvalue().splitlines()] == [
        "run_started",
        "model_called",
    ]


class _Gone(io.StringIO):
    def write(self, s: str, /) -> int:
        raise BrokenPipeError("reader went away")


def test_jsonl_sink_stops_quietly_when_the_reader_goes_away() -> None:
    sink = JsonLinesSink(_Gone())
    for event in (START, planned(A), started(A, 1)):
        sink.emit(event)  # no error into the run


def test_jsonl_docs_name_every_kind_with_its_fields() -> None:
    docs = DOCS.read_text()
    for cls in typing.get_args(Event):
        kind = cast("str", next(f.default for f in dataclasses.fields(cls) if f.name == "kind"))
        row = re.search(rf"^\| `{kind}` \|(.*)\|$", docs, re.MULTILINE)
        assert row is not None, f"docs/jsonl.md has no row for {kind}"
        for field in dataclasses.fields(cls):
            if field.name not in ("kind", "run_id", "at"):
                assert f"`{field.name}`" in row.group(1), f"{kind}.{field.name} is not documented"


# -- the real CLI -------------------------------------------------------------------------------
N_TASKS = 4


def _run_json(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    with watched_server(N_TASKS) as server:
        done = subprocess.run(
            cli_args(server, tmp_path, "--json", *flags),
            capture_output=True,
            text=True,
            env=cli_env(tmp_path / "runs"),
            cwd=tmp_path,
            timeout=50,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _split(stdout: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The event lines, then the result (one line, or indented JSON as the CLI once printed it)."""
    lines = stdout.splitlines()
    events: list[dict[str, Any]] = []
    for line in lines:
        try:
            data: object = json.loads(line)
        except json.JSONDecodeError:
            break
        if not isinstance(data, dict):
            break
        event = cast("dict[str, Any]", data)
        if "v" not in event or event.get("kind") == "result":
            break
        events.append(event)
    return events, json.loads("\n".join(lines[len(events) :]))


@pytest.mark.timeout(60)
def test_cli_json_streams_every_event_then_the_result(tmp_path: Path) -> None:
    done = _run_json(tmp_path)
    events, result = _split(done.stdout)
    kinds = [e["kind"] for e in events]
    assert (kinds[0], kinds[-1]) == ("run_started", "run_finished")
    assert {e["v"] for e in events} == {JSONL_VERSION}
    assert {e["run_id"] for e in events} == {result["run_id"]}
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)
    done_ids = [e["task_id"] for e in events if e["kind"] == "task_succeeded"]
    assert sorted(done_ids) == list(task_ids(N_TASKS))
    assert "plan_validated" in kinds and result["status"] == "completed"
    journal = tmp_path / "runs" / result["run_id"] / "events.jsonl"
    assert len(journal.read_text().splitlines()) == len(events)


@pytest.mark.timeout(60)
def test_cli_json_every_stdout_line_is_json_ending_with_the_result_line(tmp_path: Path) -> None:
    lines = _run_json(tmp_path).stdout.splitlines()
    parsed = [json.loads(line) for line in lines]
    assert parsed[0]["kind"] == "run_started"
    assert (parsed[-2]["kind"], parsed[-1]["kind"]) == ("run_finished", "result")


@pytest.mark.timeout(60)
def test_cli_json_verbose_logs_go_to_stderr_never_into_the_stream(tmp_path: Path) -> None:
    done = _run_json(tmp_path, "-v")
    events, result = _split(done.stdout)
    assert events[0]["kind"] == "run_started" and result["status"] == "completed"
    logged: list[dict[str, object]] = [
        json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")
    ]
    assert {"run_started", "task_succeeded", "run_finished"} <= {e.get("event") for e in logged}
