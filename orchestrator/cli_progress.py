"""What `orchestrator run` shows while a run goes: the sinks that print its progress."""

from __future__ import annotations

from .events import EventSink


def progress_sinks(*, as_json: bool) -> tuple[EventSink, ...]:
    """The run's progress sinks: log lines, plus one line per task change for a person."""
    from .logs import StructlogSink
    from .report import ProgressSink

    if as_json:
        return (StructlogSink(),)
    return (StructlogSink(), ProgressSink())
