"""`Orchestrator.stream`: a run's events as they happen, its result after, a `break` cancels it."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from orchestrator import (
    ConfigError,
    Orchestrator,
    PlanValidationError,
    RunStream,
    Settings,
    TaskId,
)
from orchestrator.events import Event, RunFinished, TaskStarted
from orchestrator.llm import ModelReply, ModelRequest
from orchestrator.testing import (
    ScriptedModel,
    accept_all,
    answer,
    leaf_report,
    plan_reply,
    task,
)


def orchestrator(model: ScriptedModel, tmp_path: Path) -> Orchestrator:
    return Orchestrator(
        client=model, workdir=tmp_path, builtin_tools=False, settings=Settings(plugins=False)
    )


async def test_stream_yields_every_event_then_the_result(tmp_path: Path) -> None:
    model = (
        ScriptedModel()
        .script("planner", plan_reply(task("a"), task("b", "a")))
        .script("worker", leaf_report("did a"), task="a")
        .script("worker", leaf_report("did b"), task="b")
        .respond("reviewer", accept_all())
        .script("synthesizer", answer("all done"))
    )
    orch = orchestrator(model, tmp_path)

    async with orch.stream("do a then b") as events:
        kinds = [event.kind async for event in events]

    assert kinds[0] == "run_started"
    assert kinds[-1] == "run_finished"
    assert kinds.count("task_succeeded") == 2
    assert events.result.status == "completed"
    assert events.result.answer.startswith("all done")
    model.assert_complete()


async def test_stream_break_cancels_the_run_cleanly(tmp_path: Path) -> None:
    reached = anyio.Event()

    async def hold(request: ModelRequest) -> ModelReply:
        reached.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    model = ScriptedModel().script("planner", plan_reply(task("slow"))).respond("worker", hold)
    orch = orchestrator(model, tmp_path)

    async with orch.stream("slow goal") as events:
        async for event in events:
            if isinstance(event, TaskStarted):
                await reached.wait()
                break

    result = events.result
    assert result.status == "cancelled"
    assert result.stop_reason == "cancelled"
    assert result.results[TaskId("slow")].kind == "skipped"


async def test_stream_cancel_lets_the_events_run_to_run_finished(tmp_path: Path) -> None:
    async def hold(request: ModelRequest) -> ModelReply:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    model = ScriptedModel().script("planner", plan_reply(task("slow"))).respond("worker", hold)
    orch = orchestrator(model, tmp_path)
    seen: list[Event] = []

    async with orch.stream("slow goal") as events:
        async for event in events:
            seen.append(event)
            if isinstance(event, TaskStarted):
                events.cancel()

    last = seen[-1]
    assert isinstance(last, RunFinished)
    assert last.status == "cancelled"
    assert events.result.status == "cancelled"


async def test_stream_raises_the_run_error_from_the_loop(tmp_path: Path) -> None:
    bad = plan_reply(task("a", tools=["no_such_tool"]))
    model = ScriptedModel().respond(
        "planner", lambda request: ModelReply(text=bad.model_dump_json())
    )
    orch = orchestrator(model, tmp_path)

    async with orch.stream("plan badly") as events:
        with pytest.raises(PlanValidationError, match="no_such_tool"):
            _ = [event async for event in events]

    with pytest.raises(PlanValidationError):
        events.result  # noqa: B018 - the property raises the run's error


async def test_stream_iterated_outside_its_block_is_a_config_error(tmp_path: Path) -> None:
    orch = orchestrator(ScriptedModel(), tmp_path)

    with pytest.raises(ConfigError, match=r"async with orch\.stream"):
        async for _ in orch.stream("goal"):
            pass


async def test_stream_result_before_the_run_ended_is_a_config_error(tmp_path: Path) -> None:
    async def hold(request: ModelRequest) -> ModelReply:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    model = ScriptedModel().respond("planner", hold)
    orch = orchestrator(model, tmp_path)

    async with orch.stream("goal") as events:
        with pytest.raises(ConfigError, match="has not ended"):
            events.result  # noqa: B018 - the property raises

    assert events.result.status == "cancelled"


async def test_stream_error_in_the_block_propagates_as_is_and_cancels_the_run(
    tmp_path: Path,
) -> None:
    async def hold(request: ModelRequest) -> ModelReply:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    model = ScriptedModel().script("planner", plan_reply(task("slow"))).respond("worker", hold)
    orch = orchestrator(model, tmp_path)

    streams: list[RunStream] = []

    async def use() -> None:
        async with orch.stream("slow goal") as events:
            streams.append(events)
            async for event in events:
                if isinstance(event, TaskStarted):
                    raise KeyError("mine")

    with pytest.raises(KeyError, match="mine"):
        await use()

    assert streams[0].result.status == "cancelled"


async def test_stream_runs_once(tmp_path: Path) -> None:
    model = ScriptedModel().respond("planner", lambda request: answer("not a plan"))
    events = orchestrator(model, tmp_path).stream("goal")
    async with events:
        pass

    with pytest.raises(ConfigError, match="runs once"):
        await events.__aenter__()


async def test_stream_error_of_a_run_left_unread_is_raised_on_leaving(tmp_path: Path) -> None:
    bad = plan_reply(task("a", tools=["no_such_tool"]))
    model = ScriptedModel().respond(
        "planner", lambda request: ModelReply(text=bad.model_dump_json())
    )
    orch = orchestrator(model, tmp_path)

    async def leave_after_run_finished() -> None:
        async with orch.stream("plan badly") as events:
            async for event in events:
                if isinstance(event, RunFinished):
                    break

    with pytest.raises(PlanValidationError, match="no_such_tool"):
        await leave_after_run_finished()
