"""Resuming runs in-process: a cancelled run picks up where it stopped, reads the same journal."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from orchestrator.errors import JournalError
from orchestrator.events import Event, TaskStarted, TaskSucceeded
from orchestrator.fold import fold
from orchestrator.journal import read_events
from orchestrator.models import RunId, RunResult, Skipped, Succeeded, TaskId
from orchestrator.run import Engine
from orchestrator.store import RunStore
from orchestrator.testing import RecordingSink, ScriptedModel, tool_call
from orchestrator.toolkit import Tool
from orchestrator.tools.base import tool

from .helpers import accept_all, answer, engine, leaf, plan, task


def _model() -> ScriptedModel:
    model = ScriptedModel()
    model.script(
        "planner",
        plan(task("a"), task("stuck", tools=["gate"]), task("after", "a", "stuck")),
    )
    return model.respond("reviewer", accept_all).respond("synthesizer", answer)


async def _cancelled_run(tmp_path: Path, sink: RecordingSink) -> RunResult:
    """Run until `stuck` sits in its tool with `a` accepted, then cancel."""
    entered = anyio.Event()

    @tool
    async def gate() -> str:
        """Never returns in the first run."""
        entered.set()
        await anyio.sleep_forever()
        return "unreachable"

    accepted = anyio.Event()

    class _Accepted:
        def emit(self, event: Event) -> None:
            if isinstance(event, TaskSucceeded) and event.task_id == "a":
                accepted.set()

    model = _model()
    model.script("worker", leaf("a done", out="A"), task="a")
    model.script("worker", tool_call("gate"), task="stuck")
    eng = engine(model, tmp_path, tools=[gate], sinks=[sink, _Accepted()])
    result: RunResult | None = None
    async with anyio.create_task_group() as tg:

        async def cancel_when_stuck() -> None:
            await entered.wait()
            await accepted.wait()
            await anyio.wait_all_tasks_blocked()
            eng.cancel()

        tg.start_soon(cancel_when_stuck)
        with anyio.fail_after(5):
            result = await eng.run("g")
    assert result is not None
    return result


def _resumer(tmp_path: Path, sink: RecordingSink) -> tuple[Engine, ScriptedModel]:
    @tool
    async def gate() -> str:
        """Opens at once in the resumed run."""
        return "open"

    model = ScriptedModel().respond("reviewer", accept_all).respond("synthesizer", answer)
    model.script("worker", tool_call("gate"), leaf("stuck done", out="S"), task="stuck")
    model.script("worker", leaf("after done"), task="after")
    tools: list[Tool] = [gate]
    return engine(model, tmp_path, tools=tools, sinks=[sink]), model


async def test_resume_continues_a_cancelled_run_without_rerunning_succeeded_tasks(
    tmp_path: Path,
) -> None:
    first = await _cancelled_run(tmp_path, RecordingSink())
    assert first.status == "cancelled"
    assert isinstance(first.results[TaskId("a")], Succeeded)
    assert isinstance(first.results[TaskId("stuck")], Skipped)
    sink = RecordingSink()
    eng, model = _resumer(tmp_path, sink)
    result = await eng.resume(first.run_id)
    assert result.status == "completed", result
    assert result.run_id == first.run_id
    assert all(isinstance(r, Succeeded) for r in result.results.values())
    assert model.calls_for("worker", "a") == []  # never re-run: its output fed `after`
    assert model.calls_for("planner") == []  # the plan was complete: not planned again
    started = [e for e in sink.events if isinstance(e, TaskStarted)]
    assert [(e.task_id, e.attempt) for e in started if e.task_id == "stuck"] == [("stuck", 2)]
    after_call = model.calls_for("worker", "after")[0]
    assert "A" in "\n".join(m.content for m in after_call.messages)
    # usage carries over: the first run's calls are still counted
    assert result.usage.tokens.requests >= first.usage.tokens.requests


async def test_resume_state_is_the_fold_of_the_journal(tmp_path: Path) -> None:
    first = await _cancelled_run(tmp_path, RecordingSink())
    eng, _ = _resumer(tmp_path, RecordingSink())
    result = await eng.resume(first.run_id)
    state = fold(read_events(Path(result.run_dir or "")))
    assert state.status == "completed" and state.resumes == 1
    assert state.results == dict(result.results)
    assert state.ledger.total == result.usage


async def test_resume_of_a_completed_run_returns_it_without_work(tmp_path: Path) -> None:
    model = _model()
    model.script("worker", leaf("a"), task="a")
    model.script("worker", tool_call("gate"), leaf("s"), task="stuck")
    model.script("worker", leaf("after"), task="after")

    @tool
    async def gate() -> str:
        """Open."""
        return "open"

    first = await engine(model, tmp_path, tools=[gate]).run("g")
    assert first.status == "completed"
    idle = ScriptedModel()
    again = await engine(idle, tmp_path, tools=[gate]).resume(first.run_id)
    assert again.status == "completed" and again.results == first.results
    assert idle.calls == []


async def test_resume_of_an_unknown_run_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="no journal for run nope"):
        await engine(ScriptedModel(), tmp_path).resume("nope")


def test_runs_list_shows_a_run_whose_process_is_gone_as_interrupted(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.started(RunId("r-dead"), "goal", 1.0, pid=2**22 + 12345)  # above pid_max: no process
    store.started(RunId("r-live"), "goal", 2.0)  # this process
    rows = {r.run_id: r.status for r in store.list_runs()}
    store.close()
    assert rows == {"r-dead": "interrupted", "r-live": "running"}
