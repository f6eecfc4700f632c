"""Per-run cancellation: `CancelToken` (CancelScope semantics) and the remembered `cancel()`."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from orchestrator import CancelToken, Orchestrator, RunResult, Settings
from orchestrator.llm import ModelReply, ModelRequest
from orchestrator.store import RunStore
from orchestrator.testing import (
    ScriptedModel,
    accept_all,
    answer,
    leaf_report,
    plan_reply,
    task,
)


class Runs:
    """A scripted model for concurrent runs: goal "<id>" plans one task "<id>"; task "hold"
    waits (after setting `held`) until it is cancelled, any other reports done."""

    def __init__(self) -> None:
        self.held = anyio.Event()
        self.model = (
            ScriptedModel()
            .respond("planner", self._plan)
            .respond("worker", self._work)
            .respond("reviewer", accept_all())
            .respond("synthesizer", lambda request: answer("done"))
        )

    @staticmethod
    def _plan(request: ModelRequest) -> ModelReply:
        text = "\n".join(m.content for m in request.messages if m.role == "user")
        goal = text.rsplit("Goal:\n", 1)[1].split()[0]
        return ModelReply(text=plan_reply(task(goal)).model_dump_json())

    async def _work(self, request: ModelRequest) -> ModelReply:
        if request.task_id == "hold":
            self.held.set()
            await anyio.sleep_forever()
        return ModelReply(text=leaf_report("done").model_dump_json())


def orchestrator(runs: Runs, tmp_path: Path) -> Orchestrator:
    return Orchestrator(
        client=runs.model,
        workdir=tmp_path,
        builtin_tools=False,
        settings=Settings(plugins=False),
    )


async def test_cancel_token_cancels_only_its_run(tmp_path: Path) -> None:
    runs = Runs()
    orch = orchestrator(runs, tmp_path)
    token = CancelToken()
    results: dict[str, RunResult] = {}

    async def run(goal: str, cancel: CancelToken | None = None) -> None:
        results[goal] = await orch.run(goal, cancel=cancel)

    async with anyio.create_task_group() as group:
        group.start_soon(run, "hold", token)
        await runs.held.wait()
        group.start_soon(run, "quick")
        token.cancel()

    assert results["hold"].status == "cancelled"
    assert results["hold"].stop_reason == "cancelled"
    assert results["quick"].status == "completed"
    assert token.cancel_called


async def test_cancel_token_cancelled_before_the_run_starts_it_cancelled(tmp_path: Path) -> None:
    runs = Runs()
    orch = orchestrator(runs, tmp_path)
    token = CancelToken()
    token.cancel()

    result = await orch.run("quick", cancel=token)

    assert result.status == "cancelled"
    assert runs.model.calls_for("worker") == []
    assert result.run_dir is not None
    store = RunStore(Path(result.run_dir).parent)
    try:
        assert store.load_result(result.run_id) == result
        row = store.row(result.run_id)
        assert row is not None and row.status == "cancelled"
    finally:
        store.close()


async def test_orchestrator_cancel_before_a_run_is_remembered_for_the_next_one(
    tmp_path: Path,
) -> None:
    runs = Runs()
    orch = orchestrator(runs, tmp_path)

    orch.cancel()
    first = await orch.run("quick")
    second = await orch.run("quick")

    assert (first.status, second.status) == ("cancelled", "completed")


async def test_orchestrator_cancel_stops_every_run_in_progress(tmp_path: Path) -> None:
    runs = Runs()
    orch = orchestrator(runs, tmp_path)
    results: list[RunResult] = []

    async def run() -> None:
        results.append(await orch.run("hold"))

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        group.start_soon(run)
        await runs.held.wait()
        await anyio.wait_all_tasks_blocked()
        orch.cancel()

    assert [r.status for r in results] == ["cancelled", "cancelled"]


@pytest.mark.parametrize("times", [1, 2], ids=["once", "twice"])
async def test_cancel_token_after_its_run_ended_changes_nothing(tmp_path: Path, times: int) -> None:
    runs = Runs()
    orch = orchestrator(runs, tmp_path)
    token = CancelToken()

    result = await orch.run("quick", cancel=token)
    for _ in range(times):
        token.cancel()

    assert result.status == "completed"
    assert token.cancel_called


@pytest.mark.parametrize("has_result", [True, False], ids=["cancelled", "interrupted"])
async def test_resume_with_a_cancelled_token_does_no_work(tmp_path: Path, has_result: bool) -> None:
    """Resumed with a token already cancelled, a run (cancelled, or killed before its result was
    written) ends cancelled at once, with what its journal holds."""
    runs = Runs()
    orch = orchestrator(runs, tmp_path)
    token = CancelToken()
    results: list[RunResult] = []

    async def run() -> None:
        results.append(await orch.run("hold", cancel=token))

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        await runs.held.wait()
        token.cancel()
    worker_calls = len(runs.model.calls_for("worker"))
    assert results[0].run_dir is not None
    if not has_result:
        (Path(results[0].run_dir) / "result.json").unlink()

    resumed = await orch.resume(results[0].run_id, cancel=token)

    assert (results[0].status, resumed.status) == ("cancelled", "cancelled")
    assert resumed.run_id == results[0].run_id
    assert len(runs.model.calls_for("worker")) == worker_calls
