"""The only place that spawns tasks: one task group per run, fed by the scheduler's ready set.

A single dispatch loop owns the `Scheduler`. Children (attempts, reviews, a streaming planner) post
messages into a memory stream; the loop applies each message through the engine's handler and then
starts whatever became ready. No polling, no level barrier, no shared mutable state across tasks.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .models import TaskId
from .scheduler import Scheduler

M = TypeVar("M")
Post = Callable[[M], None]


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
        send, receive = anyio.create_memory_object_stream[tuple[bool, M]](math.inf)
        self._send: MemoryObjectSendStream[tuple[bool, M]] = send
        self._receive: MemoryObjectReceiveStream[tuple[bool, M]] = receive
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
        self._send.send_nowait((False, message))

    def stop(self) -> None:
        """Start nothing new; the loop ends once running children have reported."""
        self._stopping = True

    async def run(self) -> None:
        """Dispatch until no task can start and no child is left; children's errors propagate."""
        with self._send, self._receive:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                for work in self._early:
                    tg.start_soon(self._side, work)
                self._early.clear()
                try:
                    await self._loop()
                finally:
                    self._tg = None

    async def _loop(self) -> None:
        receive, on_message = self._receive, self._on_message
        while True:
            if not self._stopping:
                self._dispatch()
            if self._live == 0 and receive.statistics().current_buffer_used == 0:
                return
            final, message = await receive.receive()
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
            tg.start_soon(self._attempt, task_id)

    async def _attempt(self, task_id: TaskId) -> None:
        message = await self._start_task(task_id)
        self._send.send_nowait((True, message))

    async def _side(self, work: Callable[[Post[M]], Awaitable[M | None]]) -> None:
        result = await work(self.post)
        self._send.send_nowait((True, result))  # type: ignore[arg-type]  # None is skipped
