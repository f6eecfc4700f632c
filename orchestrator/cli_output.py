"""What the command line prints through: credentials hidden from children and redacted from every
line, and an output pipe closed early (`orchestrator runs list | head`) ending the command quietly.
"""

from __future__ import annotations

import io
import os
import signal
import sys
from collections.abc import Generator
from contextlib import contextmanager
from typing import TextIO

from .secrets import Redactor, protect_process_secrets
from .settings import secret_variables

CLOSED_PIPE_EXIT = 128 + signal.SIGPIPE
"""The status of a command whose reader went away, as a shell reports `yes | head`'s `yes`."""


def protect_secrets() -> Redactor:
    """Hide the environment's credentials from our children; return the redactor for our output.

    The values stay in `os.environ` (settings read them later), but they leave the memory that
    `/proc/<pid>/environ` shows and the environment children inherit by default.
    """
    found = secret_variables()
    protect_process_secrets(found)
    return Redactor(found.values())


@contextmanager
def redacted_output(redactor: Redactor) -> Generator[None]:
    """Route sys.stdout and sys.stderr through `redactor` until the block ends."""
    saved = sys.stdout, sys.stderr
    sys.stdout = RedactingStream(saved[0], redactor)
    sys.stderr = RedactingStream(saved[1], redactor)
    try:
        yield
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            sys.stdout, sys.stderr = saved


def closed_output() -> int:
    """The reader of stdout went away: say nothing more, and let nothing fail at the exit.

    Python flushes stdout once more as it exits; with the pipe gone that would print an
    "Exception ignored" traceback, so the descriptor is pointed at /dev/null first.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.__stdout__.fileno() if sys.__stdout__ else 1)
    finally:
        os.close(devnull)
    return CLOSED_PIPE_EXIT


class RedactingStream(io.TextIOBase):
    """A text stream that redacts each write before passing it on.

    `print` and `traceback` write whole strings, so a secret is never split between two writes.
    """

    def __init__(self, target: TextIO, redactor: Redactor) -> None:
        super().__init__()
        self._target = target
        self._redact = redactor

    def write(self, s: str, /) -> int:
        """Write `s` redacted; returns len(s), as if all of it went through."""
        self._target.write(self._redact(s))
        return len(s)

    def flush(self) -> None:
        """Flush the target."""
        self._target.flush()

    def isatty(self) -> bool:
        """Whether the target is a terminal (renderers pick colours from this)."""
        return self._target.isatty()

    def fileno(self) -> int:
        """The target's descriptor."""
        return self._target.fileno()

    def writable(self) -> bool:
        """Always: this stream only writes."""
        return True

    @property
    def encoding(self) -> str:  # pyright: ignore[reportIncompatibleVariableOverride]
        """The target's encoding (None on io.TextIOBase would break callers that read it)."""
        # A property because io.TextIOBase's is a read-only descriptor; typeshed calls it a field.
        return self._target.encoding
