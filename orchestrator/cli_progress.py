"""What `orchestrator run` shows while a run goes: the sinks that print its progress.

On a terminal, a live table (`live.LiveView`); otherwise one plain line per task change
(`report.ProgressSink`); with `--json`, every event as a JSON line (`jsonl.JsonLinesSink`, the
schema in docs/jsonl.md). Logs go to stderr in every mode, so stdout stays one kind of output.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TextIO

from .events import EventSink


def progress_sinks(
    *,
    as_json: bool,
    stream: TextIO | None = None,
    history: Mapping[str, float] | None = None,
) -> tuple[EventSink, ...]:
    """The run's progress sinks: log lines, plus the events in the form `stream` suits.

    Args:
        as_json: Every event as one JSON line on `stream`, nothing else there.
        stream: Where progress goes; sys.stdout (as it is now) when None.
        history: Seconds by `plan.task_key` from earlier runs (`RunStore.latency_history()`),
            for the ETA of tasks the plan gives no estimate for.
    """
    from .logs import StructlogSink

    out = stream if stream is not None else sys.stdout
    if as_json:
        from .jsonl import JsonLinesSink

        return (StructlogSink(), JsonLinesSink(out))
    if _is_terminal(out):
        return _live_sinks(out, history)
    from .report import ProgressSink

    return (StructlogSink(), ProgressSink(lambda line: print(line, file=out), history=history))


def _is_terminal(stream: TextIO) -> bool:
    from rich.console import Console

    console = Console(file=stream)
    return console.is_terminal and not console.is_dumb_terminal


def _live_sinks(out: TextIO, history: Mapping[str, float] | None) -> tuple[EventSink, ...]:
    """The live table, and logs routed above it when they go to the same terminal."""
    import structlog
    from rich.console import Console

    from .live import LiveView
    from .logs import StructlogSink

    view = LiveView(Console(file=out, highlight=False), history=history)
    if not sys.stderr.isatty():
        return (StructlogSink(), view)
    logger = structlog.wrap_logger(structlog.PrintLogger(view.log_stream(sys.stderr)))
    return (StructlogSink(logger), view)
