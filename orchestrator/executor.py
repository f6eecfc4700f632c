"""The only place that spawns tasks: one task group per run, fed by the scheduler's ready set.

Children (attempts, reviews, a streaming planner) hand their messages to the dispatcher. Whoever
delivers a message settles it at once: every waiting message goes through the engine's handler in
order, then whatever became ready is started. Handlers and the scheduler are synchronous, so one
settle never interleaves with another: the state still has one writer at a time, with no hop to a
loop task in between (a hop costs two event-loop turns per finished task).

Attempts run on reusable workers. A worker that finishes a task keeps one of the tasks its message
made ready and runs it next; other ready tasks go to idle workers, and new workers are spawned only
when none is idle. Spawning an anyio task costs ~25 µs, so the dispatch loop spends quiet moments
spawning idle workers ahead of a wide burst (up to the fan-out of a running task), and a burst wider
than the idle pool spawns at most `_SPAWN_PER_TURN` workers per event-loop turn while workers that
finish meanwhile take ready tasks too. No polling and no level barrier.
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

_SPAWN_PER_TURN = 8
"""New workers per event-loop turn in a burst; a worker that frees up meanwhile serves the rest."""
_MAX_IDLE = 512
"""Idle workers kept parked for reuse; beyond this a finished worker exits."""


class _Slot:
    """An idle worker's mailbox: the next task to run, or None to exit.

    The event is made when the worker parks, not when it wakes, to keep a burst's start path short.
    """

    __slots__ = ("_assigned", "_event", "_task_id")

    def __init__(self) -> None:
        self._event: anyio.Event | None = None
        self._assigned = False
        self._task_id: TaskId | None = None

    def assign(self, task_id: TaskId | None) -> None:
        self._task_id, self._assigned = task_id, True
        if self._event is not None:
            self._event.set()

    async def next(self) -> TaskId | None:
        if not self._assigned:
            self._event = anyio.Event()
            await self._event.wait()
        self._event, self._assigned = None, False
        return self._task_id


class Dispatcher(Generic[M]):
    """Runs ready tasks the moment they are ready, under the scheduler's caps."""

    def __init__(
        self,
        scheduler: Scheduler,
        *,
        start_task: Callable[[TaskId], Awaitable[M]],
        on_message: Callable[[M], object],
        on_started: Callable[[TaskId], None] | None = None,
    ) -> None:
        self.scheduler = scheduler
        self._start_task = start_task
        self._on_message = on_message
        """Applies one message to the run's state; what it returns is ignored."""
        self._on_started = on_started
        self._live = 0
        self._tg: TaskGroup | None = None
        self._inbox: deque[tuple[bool, M | None]] = deque()
        self._settling = False
        self._wakeup: anyio.Event | None = None
        self._idle: list[_Slot] = []
        self._spawn_budget = _SPAWN_PER_TURN
        self._backlog = False
        self._wide: dict[TaskId, int] = {}
        """Running tasks whose success can make more tasks ready than one turn can spawn."""
        self._stopping = False
        self.before_dispatch: Callable[[], None] | None = None
        """Called after messages are handled and before new work starts (the journal's commit)."""
        self._early: list[Callable[[Post[M]], Awaitable[M | None]]] = []

    def spawn(self, work: Callable[[Post[M]], Awaitable[M | None]]) -> None:
        """Run background work that may `post` messages; its return value (if any) is posted too."""
        self._live += 1
        if self._tg is None:
            self._early.append(work)  # started as soon as run() opens the task group
        else:
            self._tg.start_soon(self._side, work)

    def post(self, message: M) -> None:
        """Deliver a message from any child of this dispatcher; it is handled before this returns
        (or, when posted from inside a handler, right after that handler)."""
        self._deliver(False, message)

    @property
    def idle_workers(self) -> int:
        """Workers parked for the next ready task (warmed ahead of a burst, or done with one)."""
        return len(self._idle)

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

    # -- settling: handle waiting messages, then start what is ready ---------------------------
    def _deliver(self, final: bool, message: M | None, *, keep: bool = False) -> TaskId | None:
        self._inbox.append((final, message))
        return self._settle(keep=keep)

    def _settle(self, *, keep: bool) -> TaskId | None:
        """Handle every waiting message in order, then dispatch; with `keep`, return one ready task
        for the calling worker to run itself. Re-entrant calls (a handler posting) return at once:
        the outer call handles their messages."""
        if self._settling or self._tg is None:
            return None  # before run(): the loop settles first thing
        self._settling = True
        try:
            inbox, on_message = self._inbox, self._on_message
            while inbox:
                final, message = inbox.popleft()
                if final:
                    self._live -= 1
                if message is not None:
                    on_message(message)
            if self.before_dispatch is not None:
                self.before_dispatch()
            kept = None if self._stopping else self._dispatch(keep)
        finally:
            self._settling = False
        if self._live == 0 or self._backlog or self._warm_target() > len(self._idle):
            self._wake()
        return kept

    def _dispatch(self, keep: bool) -> TaskId | None:
        room = len(self._idle) + self._spawn_budget + keep
        if room == 0:
            self._backlog = True
            return None
        batch = self.scheduler.next_batch(room)
        self._backlog = len(batch) == room
        if not batch:
            return None
        fan_out, on_started, wide = self.scheduler.fan_out, self._on_started, self._wide
        for task_id in batch:
            self._live += 1
            if on_started is not None:
                on_started(task_id)
            if (width := fan_out(task_id)) > _SPAWN_PER_TURN:
                wide[task_id] = width
        kept = batch.pop(0) if keep else None
        idle, tg = self._idle, self._tg
        assert tg is not None
        for task_id in batch:
            if idle:
                idle.pop().assign(task_id)
            else:
                self._spawn_budget -= 1
                tg.start_soon(self._worker, task_id)
        return kept

    def _warm_target(self) -> int:
        """Idle workers worth having before the widest burst a running task can release.

        Its own worker runs one task of the burst, so one fewer, and never more than the cap allows.
        """
        if not self._wide:
            return 0
        cap = self.scheduler.max_parallel
        limit = _MAX_IDLE if cap is None else min(_MAX_IDLE, cap - 1)
        return min(max(self._wide.values()) - 1, limit)

    def _wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None:
            self._wakeup = None
            wakeup.set()

    # -- the loop: first dispatch, bursts wider than one turn's spawns, warming, the end ---------
    async def _loop(self) -> None:
        while True:
            self._spawn_budget = _SPAWN_PER_TURN
            self._settle(keep=False)
            if self._live == 0 and not self._inbox:
                return
            if self._backlog and not self._stopping:
                await anyio.lowlevel.checkpoint()  # spawned workers run; spawn more next turn
            elif (missing := self._warm_target() - len(self._idle)) > 0 and not self._stopping:
                self._warm(missing)
                await anyio.lowlevel.checkpoint()
            else:
                self._wakeup = wakeup = anyio.Event()
                await wakeup.wait()

    def _warm(self, missing: int) -> None:
        """Spawn up to one turn's worth of idle workers ahead of a burst."""
        tg = self._tg
        assert tg is not None
        for _ in range(min(missing, _SPAWN_PER_TURN)):
            slot = _Slot()
            self._idle.append(slot)
            tg.start_soon(self._parked, slot)

    async def _parked(self, slot: _Slot) -> None:
        task_id = await slot.next()
        if task_id is not None:
            await self._worker(task_id, slot)

    async def _worker(self, task_id: TaskId, slot: _Slot | None = None) -> None:
        while True:
            message = await self._start_task(task_id)
            self._wide.pop(task_id, None)
            kept = self._deliver(True, message, keep=True)
            if kept is None:
                if len(self._idle) >= _MAX_IDLE or self._tg is None:
                    return
                slot = slot or _Slot()
                self._idle.append(slot)
                kept = await slot.next()
                if kept is None:
                    return
            task_id = kept

    async def _side(self, work: Callable[[Post[M]], Awaitable[M | None]]) -> None:
        result = await work(self.post)
        self._deliver(True, result)
