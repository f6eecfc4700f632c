"""Ctrl-C and SIGTERM for every command that runs work (a goal, a resume, a goal script): the
first signal cancels the work, which ends with its partial result; later ones only say so.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import FrameType
from typing import Generic, TypeVar

import anyio

T = TypeVar("T")
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_RECANCEL_S = 0.1
"""After the first stop signal, how often the cancel is repeated (see `_StopSignals.serve`)."""
CANCELLING = "cancelling: stopping every task (partial result follows)"
ALREADY_STOPPING = "already stopping: the partial result follows"
SIGNALS_HELP = (
    "Ctrl-C (SIGINT) or SIGTERM stops the run: running tasks are cancelled and the partial "
    "result is printed and saved (result.json of the run). Further signals are ignored until "
    "it is printed."
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome(Generic[T]):
    """How the work ended: its value or its error, and the signal that stopped it, if any."""

    value: T | None = None
    error: Exception | None = None
    """What the work raised (an error group as it was raised)."""
    stopped_by: int | None = None
    """The first stop signal received, if any."""

    def signal_status(self) -> int | None:
        """128+N when signal N stopped the work, as a shell reports a death by signal."""
        return None if self.stopped_by is None else 128 + self.stopped_by


def run_with_signals(run: Callable[[], Awaitable[T]], cancel: Callable[[], None]) -> Outcome[T]:
    """Await `run()` with the stop signals turned into `cancel()` calls; return how it ended.

    The first SIGINT or SIGTERM calls `cancel`: the work stops dispatching, cancels what runs
    and returns (or raises) what it has. Later ones only print a notice. From this call until
    the process exits the two signals cannot kill it, so one landing during cleanup, printing
    or the interpreter's shutdown loses nothing (after this returns they are ignored: print the
    outcome and exit).
    """
    stops = _StopSignals()

    async def go() -> Outcome[T]:
        value: T | None = None
        error: Exception | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(stops.serve, cancel)
            try:
                value = await run()
            except Exception as exc:  # reported by the caller, with the partial result it holds
                error = exc
            tg.cancel_scope.cancel()
        return Outcome(value=value, error=error, stopped_by=stops.first)

    try:
        return anyio.run(go)
    finally:
        # Ignored from here to the exit: interpreter shutdown puts the default action back in
        # place of a Python handler (not of SIG_IGN), and it can take long enough for one to land.
        for signum in _STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)


class _StopSignals:
    """SIGINT and SIGTERM, caught from construction on.

    Not `anyio.open_signal_receiver`: closing it restores the default actions, so a signal landing
    after that but before the exit (while the result is still printed or flushed) would kill the
    process (SIGTERM) or raise KeyboardInterrupt in the middle of the print (SIGINT). The handler
    stays installed instead, and hands each signal to the event loop through a pipe.
    """

    def __init__(self) -> None:
        self.first: int | None = None
        """The first stop signal received, if any."""
        self._announced = 0
        # Never closed: the handler writes to it for as long as the process lives.
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        for signum in _STOP_SIGNALS:
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Runs on the main thread between two bytecodes: note it, wake the loop, nothing more
        # (printing here could re-enter a write the main thread is in the middle of).
        if self.first is None:
            self.first = signum
        with contextlib.suppress(BlockingIOError):  # full: the loop has enough to wake for
            os.write(self._write, bytes((signum,)))

    async def serve(self, cancel: Callable[[], None]) -> None:
        """Call `cancel` on the first signal, then again every `_RECANCEL_S` and on each signal.

        Repeated because a cancel that lands before the run has started its work (while the
        backend starts) finds nothing to cancel; `cancel` is idempotent.
        """
        while True:
            with anyio.move_on_after(None if self.first is None else _RECANCEL_S):
                await anyio.wait_readable(self._read)
                self._announce()
            if self.first is not None:
                cancel()

    def _announce(self) -> None:
        """Say what each signal received since the last call does."""
        with contextlib.suppress(BlockingIOError):  # woken for nothing: nothing to say
            for _ in os.read(self._read, 64):
                if self._announced:
                    print(ALREADY_STOPPING, file=sys.stderr)
                else:
                    print(CANCELLING, file=sys.stderr)
                self._announced += 1
