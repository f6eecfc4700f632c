"""The only place that spawns tasks: one task group per run, fed by the scheduler's ready set.

A single dispatch loop owns the `Scheduler`. Children (attempts, reviews, a streaming planner) put
messages in the loop's inbox; the loop applies every waiting message through the engine's handler
and then starts whatever became ready. Attempts run on reusable worker tasks: a worker that has
reported waits for the next ready task, and a new one is spawned only when none is idle (spawning
an anyio task costs ~25 µs, handing a task to an idle worker ~5). No polling, no level barrier.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import anyio
from anyio.abc import TaskGroup

from .models import TaskId
from .scheduler import Scheduler

M = TypeVar("M")
Post = Callable[[M], None]

_MAX_IDLE = 64
"""Idle workers kept for reuse; after a wide burst the rest exit instead of parking."""


class _Slot:
    """An idle worker's mailbox: the next task to run, or None to exit."""

    __slots__ = ("_event", "_task_id")

    def __init__(self) -> None:
        self._event = anyio.Event()
        self._task_id: TaskId | None = None

    def assign(self, task_id: TaskId | None) -> None:
        self._task_id = task_id
        self._event.set()

    async def next(self) -> TaskId | None:
        await self._event.wait()
        self._event = anyio.Event()
        return self._task_id


class Dispatcher(Generic[M]):
    """Runs ready tasks the moment they are ready, under the scheduler's caps."""

    def __init__(
        self,
        scheduler: Scheduler,
        *,
        start_task: Callable[[TaskId], Awaitable[M]],
        on_message: Callable[[M], None],
        on_started: Callable[[TaskId], None] | None = None,
    ) -> None:
        self.scheduler = scheduler
        self._start_task = start_task
        self._on_message = on_message
        self._on_started = on_started
        self._live = 0
        self._tg: TaskGroup | None = None
        self._inbox: deque[tuple[bool, M | None]] = deque()
        self._wakeup: anyio.Event | None = None
        self._idle: list[_Slot] = []
        self._stopping = False
        self._early: list[Callable[[Post[M]], Awaitable[M | None]]] = []

    def spawn(self, work: Callable[[Post[M]], Awaitable[M | None]]) -> None:
        """Run background work that may `post` messages; its return value (if any) is posted too."""
        self._live += 1
        if self._tg is None:
            self._early.append(work)  # started as soon as run() opens the task group
        else:
            self._tg.start_soon(self._side, work)

    def post(self, message: M) -> None:
        """Deliver a message to the loop from any child of this dispatcher."""
        self._deliver(False, message)

    def stop(self) -> None:
        """Start nothing new; the loop ends once running children have reported."""
        self._stopping = True

    async def run(self) -> None:
        """Dispatch until no task can start and no child is left; children's errors propagate."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            for work in self._early:
                tg.start_soon(self._side, work)
            self._early.clear()
            try:
                await self._loop()
            finally:
                self._tg = None
                while self._idle:
                    self._idle.pop().assign(None)

    def _deliver(self, final: bool, message: M | None) -> None:
        self._inbox.append((final, message))
        wakeup = self._wakeup
        if wakeup is not None:
            self._wakeup = None
            wakeup.set()

    async def _loop(self) -> None:
        inbox, on_message = self._inbox, self._on_message
        while True:
            if not self._stopping:
                self._dispatch()
            if self._live == 0 and not inbox:
                return
            if inbox:
                await anyio.lowlevel.checkpoint()  # a handler posted: still let children run
            else:
                self._wakeup = wakeup = anyio.Event()
                await wakeup.wait()
            while inbox:  # every message that arrived meanwhile, in order, then one dispatch
                final, message = inbox.popleft()
                if final:
                    self._live -= 1
                if message is not None:
                    on_message(message)

    def _dispatch(self) -> None:
        tg = self._tg
        assert tg is not None
        for task_id in self.scheduler.next_batch():
            self._live += 1
            if self._on_started is not None:
                self._on_started(task_id)
            if self._idle:
                self._idle.pop().assign(task_id)
            else:
                tg.start_soon(self._worker, task_id)

    async def _worker(self, task_id: TaskId) -> None:
        message = await self._start_task(task_id)
        slot: _Slot | None = None
        while len(self._idle) < _MAX_IDLE:
            slot = slot or _Slot()  # made late, so a burst of new workers starts sooner
            self._idle.append(slot)
            self._deliver(True, message)
            next_id = await slot.next()
            if next_id is None:
                return
            message = await self._start_task(next_id)
        self._deliver(True, message)

    async def _side(self, work: Callable[[Post[M]], Awaitable[M | None]]) -> None:
        result = await work(self.post)
        self._deliver(True, result)
