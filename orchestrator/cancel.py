"""Per-run cancellation with anyio `CancelScope` semantics: a cancel is never lost to timing.

A `CancelToken` may be cancelled before the run it is passed to has started (the run then starts
cancelled and ends at once), while it runs, or after (no effect).
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from contextlib import contextmanager

import anyio


class CancelToken:
    """Cancels the runs it is passed to, like `CancelScope.cancel()`: now, or as each starts.

    Pass it to `Orchestrator.run(goal, cancel=token)` (or `resume`, `stream`); `cancel()` may be
    called from any task of the same event loop, any number of times. A cancelled run returns
    its partial result with status cancelled, journaled and resumable.
    """

    __slots__ = ("_called", "_scopes")

    def __init__(self) -> None:
        self._called = False
        self._scopes: set[anyio.CancelScope] = set()

    @property
    def cancel_called(self) -> bool:
        """True once `cancel()` was called (named like `CancelScope.cancel_called`)."""
        return self._called

    def cancel(self) -> None:
        """Cancel every run holding this token now, and each run it is passed to later."""
        self._called = True
        for scope in tuple(self._scopes):
            scope.cancel()


@contextmanager
def cancel_scope(tokens: Iterable[CancelToken]) -> Generator[anyio.CancelScope]:
    """A scope that any of `tokens` cancels; one already cancelled cancels it on entry."""
    scope = anyio.CancelScope()
    held = tuple(tokens)
    for token in held:
        token._scopes.add(scope)  # pyright: ignore[reportPrivateUsage] - the token's one binder
        if token.cancel_called:
            scope.cancel()
    try:
        with scope:
            yield scope
    finally:
        for token in held:
            token._scopes.discard(scope)  # pyright: ignore[reportPrivateUsage]
