"""Event sinks: structlog (console on a TTY, JSON otherwise) and a JSONL file per run."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

import structlog

from .events import Event, EventSink, event_fields


def configure_logging(*, level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """App-edge setup: console renderer on a TTY, dict tracebacks + JSON otherwise."""
    out = stream or sys.stderr
    renderer: Any
    if out.isatty():
        renderer = structlog.dev.ConsoleRenderer()
        processors: list[Any] = [structlog.processors.TimeStamper(fmt="iso"), renderer]
    else:
        processors = [
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(),
        ]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            *processors,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )


class StructlogSink:
    """Logs each event with event name = `kind` and its fields as keys."""

    def __init__(self, logger: Any = None) -> None:
        self._log = logger if logger is not None else structlog.get_logger("orchestrator")

    def emit(self, event: Event) -> None:
        fields = event_fields(event)
        kind = str(fields.pop("kind"))
        fields.pop("at", None)
        level = "warning" if kind in _WARN else "info"
        getattr(self._log, level)(kind, **fields)


_WARN = frozenset({"task_failed", "model_call_failed", "plan_rejected", "escalation_decided"})


class JsonlSink:
    """Appends one JSON object per event to a file, flushed per line so a crash loses nothing."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = path.open("a", encoding="utf-8")

    def emit(self, event: Event) -> None:
        self._file.write(json.dumps(event_fields(event), default=str, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class FanOutSink:
    """Sends every event to several sinks in order."""

    def __init__(self, sinks: Iterable[EventSink]) -> None:
        self.sinks = tuple(sinks)

    def emit(self, event: Event) -> None:
        for sink in self.sinks:
            sink.emit(event)


def read_events(path: Path) -> list[dict[str, Any]]:
    """Load a run's events.jsonl back, for inspection after the fact."""
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
