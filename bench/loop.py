"""The event loop every bench run uses, ours and LangGraph's alike: one whose sleeps end on time.

asyncio's default selector (epoll) rounds each wait up to a whole millisecond, so a fake executor
sleeping 10 ms wakes ~0.85 ms late (median, measured here), which would be charged to whichever
scheduler runs it. `select()` takes microseconds; with the few descriptors a bench run opens it is
as cheap, and the lateness falls to the kernel's wake-up latency (~0.25 ms median in this VM).
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable
from typing import TypeVar, TypeVarTuple

import anyio

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


def _precise_loop() -> asyncio.AbstractEventLoop:
    return asyncio.SelectorEventLoop(selectors.SelectSelector())


def run(func: Callable[[*Ts], Awaitable[T]], *args: *Ts) -> T:
    """`anyio.run` on the asyncio backend with the precise-timer loop."""
    return anyio.run(
        func, *args, backend="asyncio", backend_options={"loop_factory": _precise_loop}
    )
