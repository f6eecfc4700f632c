"""A run's events as an async stream (`Orchestrator.stream`), with structured concurrency.

The run goes in a task group the `async with` block owns, and sends its events through a memory
object stream; leaving the block (after the last event, a `break` or an error) ends the run.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from types import TracebackType

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .cancel import CancelToken
from .errors import ConfigError
from .events import Event, EventSink
from .models import RunResult

RunStarter = Callable[[EventSink, CancelToken], Awaitable[RunResult]]
"""Runs one goal with an extra sink and a cancel token, and returns its result."""


class _Feed:
    """The run's extra sink: every event into the stream (unbounded: `emit` must not block)."""

    def __init__(self, send: MemoryObjectSendStream[Event]) -> None:
        self._send = send

    def emit(self, event: Event) -> None:
        # Once nobody reads (the block is being left and the run cancelled), drop the rest.
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._send.send_nowait(event)


class RunStream:
    """The events of one run as they happen, then its result.

    Use it as `async with orch.stream(goal) as events: async for event in events: ...`; the
    loop ends after `run_finished`, and `events.result` is then the `RunResult`. Leaving the
    block while the run goes on (a `break`, an exception) cancels the run and waits for it to
    end cleanly: `result` is then its partial result, status cancelled.
    """

    def __init__(self, start: RunStarter, cancel: CancelToken | None = None) -> None:
        self._start = start
        self._token = cancel or CancelToken()
        self._stack: AsyncExitStack | None = None
        self._receive: MemoryObjectReceiveStream[Event] | None = None
        self._result: RunResult | None = None
        self._error: Exception | None = None
        self._error_seen = False

    async def __aenter__(self) -> RunStream:
        if self._stack is not None:
            raise ConfigError("a RunStream runs once: call orch.stream(goal) again for another run")
        self._stack = AsyncExitStack()
        send, receive = anyio.create_memory_object_stream[Event](math.inf)
        self._receive = receive
        group = await self._stack.enter_async_context(anyio.create_task_group())
        self._stack.callback(receive.close)
        group.start_soon(self._run, send)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._token.cancel()  # a run that already ended ignores it
        assert self._stack is not None
        # The run handles its own errors, so the group only waits for it: an error of the
        # block goes on as it is (not wrapped in an exception group).
        await self._stack.aclose()
        if exc is None and self._error is not None and not self._error_seen:
            self._error_seen = True
            raise self._error

    def __aiter__(self) -> RunStream:
        if self._receive is None:
            raise ConfigError(
                "iterate a run's events inside its block: "
                "`async with orch.stream(goal) as events: async for event in events: ...`"
            )
        return self

    async def __anext__(self) -> Event:
        assert self._receive is not None, "iterated without `async with`"
        try:
            return await self._receive.receive()
        except anyio.EndOfStream:
            if self._error is not None and not self._error_seen:
                self._error_seen = True
                raise self._error from None
            raise StopAsyncIteration from None

    @property
    def result(self) -> RunResult:
        """The run's result, once its events have ended (or the block was left).

        Raises:
            ConfigError: the run has not ended yet.
            Exception: what the run raised (e.g. `PlanValidationError`), if it did.
        """
        if self._error is not None:
            self._error_seen = True
            raise self._error
        if self._result is None:
            raise ConfigError("the run has not ended: read `result` after the event loop ends")
        return self._result

    def cancel(self) -> None:
        """Cancel the run; its events go on to `run_finished` (status cancelled), then end."""
        self._token.cancel()

    async def _run(self, send: MemoryObjectSendStream[Event]) -> None:
        async with send:
            try:
                self._result = await self._start(_Feed(send), self._token)
            except Exception as exc:  # handed to the reader: raised from the loop or `result`
                self._error = exc
