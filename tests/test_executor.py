"""The dispatcher: ready tasks start at once, under the cap, on reused workers; errors propagate."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


async def test_executor_chain_runs_on_one_worker_without_a_hop() -> None:
    """A finished worker keeps the task its message made ready: no event-loop turn in between."""
    s = _scheduler(50, chain=True)
    hosts: set[int] = set()
    ticks = 0
    gaps: list[int] = []
    last_end = -1

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await anyio.lowlevel.checkpoint()
            ticks += 1

    async def start(task_id: TaskId) -> TaskId:
        nonlocal last_end
        if last_end >= 0:
            gaps.append(ticks - last_end)
        hosts.add(anyio.get_current_task().id)
        await anyio.lowlevel.checkpoint()
        last_end = ticks
        return task_id

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await Dispatcher(s, start_task=start, on_message=s.succeed).run()
        tg.cancel_scope.cancel()
    assert len(hosts) == 1
    assert gaps == [0] * 49
    assert s.count("succeeded") == 50


def _fan(width: int, *, cap: int | None = None) -> Scheduler:
    s = Scheduler(max_parallel=cap)
    s.add(TaskId("root"), [])
    for i in range(width):
        s.add(TaskId(f"leaf{i}"), [TaskId("root")])
    return s


@pytest.mark.parametrize(
    ("width", "cap", "warmed"),
    [(100, None, 99), (100, 10, 9), (5, None, 0)],
    ids=["uncapped", "capped", "narrow"],
)
async def test_executor_warms_idle_workers_while_a_wide_root_runs(
    width: int, cap: int | None, warmed: int
) -> None:
    """Workers for the root's dependents are spawned while it runs, so the burst only hands out."""
    s = _fan(width, cap=cap)
    release = anyio.Event()
    hosts: set[int] = set()

    async def start(task_id: TaskId) -> TaskId:
        hosts.add(anyio.get_current_task().id)
        if task_id == "root":
            await release.wait()
        await anyio.lowlevel.checkpoint()
        return task_id

    dispatcher = Dispatcher(s, start_task=start, on_message=s.succeed)
    async with anyio.create_task_group() as tg:
        tg.start_soon(dispatcher.run)
        await anyio.wait_all_tasks_blocked()
        assert dispatcher.idle_workers == warmed
        release.set()
    assert s.count("succeeded") == width + 1
    if warmed == width - 1:  # the root's worker and the warmed ones ran it all: none spawned late
        assert len(hosts) == width


async def test_executor_burst_wider_than_a_turn_starts_every_task() -> None:
    """Spawning is spread over event-loop turns; every task of a 300-wide burst still starts."""
    s = Scheduler()
    for i in range(300):
        s.add(TaskId(f"t{i}"), [])
    gate = anyio.Event()
    started = 0

    async def start(task_id: TaskId) -> TaskId:
        nonlocal started
        started += 1
        await gate.wait()
        return task_id

    dispatcher = Dispatcher(s, start_task=start, on_message=s.succeed)
    async with anyio.create_task_group() as tg:
        tg.start_soon(dispatcher.run)
        await anyio.wait_all_tasks_blocked()
        assert started == 300  # all running at once: no worker waits for another to finish
        gate.set()
    assert s.is_finished()


async def test_executor_messages_posted_by_a_handler_are_handled_in_order() -> None:
    s = Scheduler()
    got: list[str] = []
    dispatcher: Dispatcher[str]

    def on_message(message: str) -> None:
        got.append(message)
        if message == "first":
            dispatcher.post("from the handler")
            got.append("handler returned")

    async def side(post: object) -> str:
        dispatcher.post("first")
        dispatcher.post("second")
        return "returned"

    dispatcher = Dispatcher(s, start_task=_never, on_message=on_message)
    dispatcher.spawn(side)
    await dispatcher.run()
    assert got == ["first", "handler returned", "from the handler", "second", "returned"]


async def test_executor_handler_error_in_a_worker_propagates() -> None:
    s = _scheduler(10, cap=3)

    async def start(task_id: TaskId) -> TaskId:
        await anyio.lowlevel.checkpoint()
        return task_id

    def on_message(task_id: TaskId) -> None:
        if task_id == "t4":
            raise ValueError("handler broke")
        s.succeed(task_id)

    with pytest.raises(ExceptionGroup) as info, anyio.fail_after(5):
        await Dispatcher(s, start_task=start, on_message=on_message).run()
    assert info.group_contains(ValueError, match="handler broke")
    assert len(info.value.exceptions) == 1


@st.composite
def _timed_dags(draw: st.DrawFn) -> tuple[list[list[int]], list[int], int | None]:
    n = draw(st.integers(min_value=1, max_value=60))
    deps = [sorted(draw(st.sets(st.integers(0, i - 1), max_size=4))) if i else [] for i in range(n)]
    steps = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    cap = draw(st.none() | st.integers(min_value=1, max_value=12))
    return deps, steps, cap


@given(_timed_dags())
@settings(max_examples=120, deadline=None)
def test_executor_random_dags_run_once_in_order_under_the_cap(
    dag: tuple[list[list[int]], list[int], int | None],
) -> None:
    """Random DAGs and random numbers of yields per task through the real dispatcher."""
    deps, steps, cap = dag
    s = Scheduler(max_parallel=cap)
    for i, ds in enumerate(deps):
        s.add(TaskId(str(i)), [TaskId(str(d)) for d in ds])
    done: set[int] = set()
    started: list[int] = []
    running = peak = 0

    async def start(task_id: TaskId) -> TaskId:
        nonlocal running, peak
        i = int(task_id)
        assert all(d in done for d in deps[i]), "started before a dependency"
        assert i not in started, "started twice"
        started.append(i)
        running += 1
        peak = max(peak, running)
        for _ in range(steps[i]):
            await anyio.lowlevel.checkpoint()
        running -= 1
        done.add(i)
        return task_id

    anyio.run(Dispatcher(s, start_task=start, on_message=s.succeed).run)
    assert sorted(started) == list(range(len(deps)))
    assert cap is None or peak <= cap
    assert s.is_finished()
