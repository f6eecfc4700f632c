"""The dispatcher: ready tasks start at once, under the cap, on reused workers; errors propagate."""

from __future__ import annotations

import anyio
import pytest

from orchestrator.executor import Dispatcher
from orchestrator.models import TaskId
from orchestrator.scheduler import Scheduler


def _scheduler(n: int, *, cap: int | None = None, chain: bool = False) -> Scheduler:
    s = Scheduler(max_parallel=cap)
    for i in range(n):
        s.add(TaskId(f"t{i}"), [TaskId(f"t{i - 1}")] if chain and i else [])
    return s


async def test_executor_runs_every_task_once_under_the_cap() -> None:
    s = _scheduler(300, cap=7)
    running = 0
    peak = 0
    seen: list[str] = []

    async def start(task_id: TaskId) -> TaskId:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.lowlevel.checkpoint()
        running -= 1
        seen.append(task_id)
        return task_id

    await Dispatcher(s, start_task=start, on_message=s.succeed).run()
    assert sorted(seen) == sorted(f"t{i}" for i in range(300))
    assert peak <= 7
    assert s.is_finished()


async def test_executor_chain_runs_in_dependency_order() -> None:
    s = _scheduler(100, chain=True)
    order: list[str] = []

    async def start(task_id: TaskId) -> TaskId:
        order.append(task_id)
        return task_id

    await Dispatcher(s, start_task=start, on_message=s.succeed).run()
    assert order == [f"t{i}" for i in range(100)]


async def test_executor_error_in_a_task_propagates_and_cancels_the_rest() -> None:
    s = _scheduler(20, cap=4)
    release = anyio.Event()

    async def start(task_id: TaskId) -> TaskId:
        if task_id == "t2":
            raise KeyError("boom")
        await release.wait()
        return task_id

    with pytest.raises(ExceptionGroup) as info, anyio.fail_after(5):
        await Dispatcher(s, start_task=start, on_message=s.succeed).run()
    assert info.group_contains(KeyError, match="boom")
    assert len(info.value.exceptions) == 1


async def test_executor_stop_starts_nothing_new() -> None:
    s = _scheduler(10, cap=2)
    started: list[str] = []
    dispatcher: Dispatcher[TaskId]

    async def start(task_id: TaskId) -> TaskId:
        started.append(task_id)
        dispatcher.stop()
        return task_id

    dispatcher = Dispatcher(s, start_task=start, on_message=s.succeed)
    await dispatcher.run()
    assert len(started) == 2


async def test_executor_spawn_before_run_and_post() -> None:
    s = Scheduler()
    got: list[str] = []
    dispatcher: Dispatcher[str] = Dispatcher(s, start_task=_never, on_message=got.append)

    async def side(post: object) -> str:
        dispatcher.post("posted")
        await anyio.lowlevel.checkpoint()
        return "returned"

    dispatcher.spawn(side)
    await dispatcher.run()
    assert got == ["posted", "returned"]


async def _never(task_id: TaskId) -> str:
    raise AssertionError("no task should start")


async def test_executor_outside_cancellation_stops_children() -> None:
    s = _scheduler(3)
    entered = 0

    async def start(task_id: TaskId) -> TaskId:
        nonlocal entered
        entered += 1
        await anyio.sleep_forever()
        return task_id

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(Dispatcher(s, start_task=start, on_message=s.succeed).run)
            await anyio.wait_all_tasks_blocked()
            scope.cancel()
    assert scope.cancelled_caught
    assert entered == 3
