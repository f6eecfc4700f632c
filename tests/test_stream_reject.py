"""A streamed plan that fails validation leaves no orphan: attempts it started are cut, and the
result and the final plan hold only the repaired plan's tasks (an unchanged task is adopted)."""

from __future__ import annotations

from pathlib import Path

import anyio

from orchestrator.events import AttemptFinished, PlanValidated
from orchestrator.llm import ModelReply, ModelRequest
from orchestrator.models import TaskId
from orchestrator.testing import RecordingSink, ScriptedModel
from orchestrator.toolkit import Tool
from orchestrator.tools.base import tool

from .helpers import accept_all, answer, engine, leaf, plan, task, tool_then_leaf


def _hanging() -> tuple[Tool, anyio.Event, list[str]]:
    started = anyio.Event()
    finished: list[str] = []

    @tool
    async def hang() -> str:
        """Run until cancelled."""
        started.set()
        await anyio.sleep_forever()
        finished.append("hang")
        return "never"

    return hang, started, finished


def _worker(request: ModelRequest) -> ModelReply:
    if request.task_id == "a" and not any(m.role == "tool" for m in request.messages):
        return tool_then_leaf("hang")(request)
    return ModelReply(text=leaf(f"{request.task_id} done").model_dump_json())


async def test_a_rejected_streamed_plan_cuts_its_running_tasks(tmp_path: Path) -> None:
    hang, started, finished = _hanging()
    model = ScriptedModel().script(
        "planner",
        plan(task("a", tools=["hang"]), task("b", tools=["ghost_tool"])),
        plan(task("x"), task("y", "x")),
    )
    model.pause_stream("planner", '"id":"b"', started)
    model.respond("worker", _worker).respond("reviewer", accept_all)
    model.respond("synthesizer", answer)
    sink = RecordingSink()
    with anyio.fail_after(5):
        result = await engine(model, tmp_path, tools=[hang], sinks=[sink]).run("g")

    assert result.status == "completed"
    assert sorted(result.results) == [TaskId("x"), TaskId("y")]
    assert result.plan is not None and [t.id for t in result.plan.tasks] == ["x", "y"]
    assert finished == []  # a's tool never got past its wait: it was cancelled
    cut = [e for e in sink.of("attempt_finished", "a") if isinstance(e, AttemptFinished)]
    assert [e.outcome for e in cut] == ["cancelled"]
    (final,) = [e for e in sink.of("plan_validated") if isinstance(e, PlanValidated)]
    assert final.task_ids == ("x", "y")


async def test_a_cut_task_the_repaired_plan_keeps_runs_again(tmp_path: Path) -> None:
    hang, started, _ = _hanging()
    calls = {"a": 0}

    def worker(request: ModelRequest) -> ModelReply:
        if request.task_id == "a":
            calls["a"] += 1
            if calls["a"] == 1:  # the first attempt hangs in its tool and is cut
                return tool_then_leaf("hang")(request)
        return ModelReply(text=leaf(f"{request.task_id} done").model_dump_json())

    model = ScriptedModel().script(
        "planner",
        plan(task("a", tools=["hang"]), task("b", tools=["ghost_tool"])),
        plan(task("a", tools=["hang"]), task("c", "a")),
    )
    model.pause_stream("planner", '"id":"b"', started)
    model.respond("worker", worker).respond("reviewer", accept_all)
    model.respond("synthesizer", answer)
    with anyio.fail_after(5):
        result = await engine(model, tmp_path, tools=[hang]).run("g")

    assert result.status == "completed"
    assert sorted(result.results) == [TaskId("a"), TaskId("c")]
    assert result.results[TaskId("a")].kind == "succeeded"
