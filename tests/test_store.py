"""The run store: latency history learned from accepted attempts, surviving a reopen."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.models import (
    ErrorInfo,
    Failed,
    Plan,
    RunId,
    RunResult,
    Succeeded,
    TaskId,
    TaskResult,
    TaskSpec,
    Usage,
)
from orchestrator.plan import task_key
from orchestrator.store import RunStore, blend


@pytest.mark.parametrize(
    ("seconds", "samples", "new", "expected"),
    [(10.0, 1, 20.0, 15.0), (10.0, 2, 40.0, 20.0), (10.0, 50, 50.0, 20.0)],
    ids=["mean-of-two", "mean-of-three", "recent-weighted"],
)
def test_blend_is_a_mean_then_an_exponential_average(
    seconds: float, samples: int, new: float, expected: float
) -> None:
    assert blend(seconds, samples, new) == pytest.approx(expected)


def _spec(tid: str) -> TaskSpec:
    return TaskSpec(id=TaskId(tid), instruction=f"do {tid}")


def _result(run_id: str, results: dict[TaskId, TaskResult], plan: Plan | None) -> RunResult:
    return RunResult(
        run_id=RunId(run_id),
        goal="g",
        status="completed",
        answer="",
        plan=plan,
        results=results,
        usage=Usage(),
    )


def _done(tid: str, seconds: float) -> Succeeded:
    return Succeeded(task_id=TaskId(tid), summary="ok", tier="mini", attempts=1, duration_s=seconds)


def test_finished_runs_teach_latency_that_survives_a_reopen(tmp_path: Path) -> None:
    a, b, c, d = (_spec(x) for x in "abcd")
    plan = Plan(goal="g", tasks=(a, b, c, d))
    failed = Failed(
        task_id=TaskId("c"), error=ErrorInfo(type="X", message="no"), tier="mini", attempts=2
    )
    store = RunStore(tmp_path)
    for run_id, seconds in (("r1", 10.0), ("r2", 20.0)):
        store.started(RunId(run_id), "g", 0.0)
        results: dict[TaskId, TaskResult] = {
            TaskId("a"): _done("a", seconds),
            TaskId("b"): _done("b", 0.0),  # reused from before: no new sample
            TaskId("c"): failed,
        }
        store.finished(_result(run_id, results, plan), 1.0)
    store.close()

    reopened = RunStore(tmp_path)
    assert reopened.latency_history() == {task_key(a): pytest.approx(15.0)}
    reopened.record_latencies({task_key(d): 3.0}, 2.0)
    assert reopened.latency_history()[task_key(d)] == 3.0
    reopened.close()


def test_a_run_without_a_plan_teaches_nothing(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.started(RunId("r"), "g", 0.0)
    store.finished(_result("r", {TaskId("a"): _done("a", 5.0)}, None), 1.0)
    assert store.latency_history() == {}
    store.close()


def test_store_redacts_credentials_in_result_and_index(tmp_path: Path) -> None:
    leaked = "sk-proj-" + "Qq1Rr2Ss3Tt4" * 4
    failed = Failed(
        task_id=TaskId("a"),
        error=ErrorInfo(type="ModelAPIError", message=f"Authorization: Bearer {leaked}"),
        tier="mini",
        attempts=1,
    )
    store = RunStore(tmp_path)
    store.started(RunId("r"), f"use api_key={leaked}", 0.0)
    path = store.finished(_result("r", {TaskId("a"): failed}, None), 1.0)
    store.close()

    for stored in tmp_path.rglob("*"):
        if stored.is_file():
            assert leaked.encode() not in stored.read_bytes(), stored
    reloaded = RunStore(tmp_path).load_result("r")
    assert isinstance(reloaded.results[TaskId("a")], Failed)
    assert json.loads(path.read_text())["run_id"] == "r"
