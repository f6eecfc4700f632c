"""Event sinks: structlog (console on a TTY, JSON otherwise) and a JSONL file per run.

Every sink redacts credential-looking text (`orchestrator.secrets`) before it writes: an error
message that echoes an `Authorization` header must not reach a log line or a file.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

import structlog

from .events import Event, EventSink, event_fields
from .secrets import Redactor, redact_data, redact_patterns


def configure_logging(
    *, level: int = logging.INFO, stream: TextIO | None = None, secrets: Iterable[str] = ()
) -> None:
    """App-edge setup: console renderer on a TTY, dict tracebacks + JSON otherwise.

    Args:
        level: The lowest level written.
        stream: Where lines go; stderr when None.
        secrets: Values redacted from every rendered line, besides credential-looking text.
    """
    out = stream or sys.stderr
    redaction = _Redaction(Redactor(secrets))
    renderer: Any
    if out.isatty():
        renderer = structlog.dev.ConsoleRenderer()
        processors: list[Any] = [
            structlog.processors.TimeStamper(fmt="iso"),
            redaction.fields,
            renderer,
        ]
    else:
        processors = [
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.dict_tracebacks,
            redaction.fields,
            structlog.processors.JSONRenderer(),
        ]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            *processors,
            redaction.rendered,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )


class _Redaction:
    """Two processors: `fields` runs before the renderer, `rendered` after it.

    Both are needed: JSON escaping can hide a pattern match in the rendered text, and the console
    renderer formats tracebacks itself, after every field processor has run.
    """

    def __init__(self, redactor: Redactor) -> None:
        self._redact = redactor

    def fields(self, logger: object, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        return {key: redact_data(value, self._redact) for key, value in event_dict.items()}

    def rendered(self, logger: object, method: str, rendered: Any) -> Any:
        return self._redact(rendered) if isinstance(rendered, str) else rendered


class StructlogSink:
    """Logs each event with event name = `kind` and its fields (redacted) as keys."""

    def __init__(self, logger: Any = None) -> None:
        self._log = logger if logger is not None else structlog.get_logger("orchestrator")

    def emit(self, event: Event) -> None:
        fields = {name: redact_data(value) for name, value in event_fields(event).items()}
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
        # The data, not the JSON text: in the text an escape (`\n` before a key) hides a match.
        fields = redact_data(event_fields(event))
        line = json.dumps(fields, default=_redacted_str, ensure_ascii=False)
        self._file.write(line + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _redacted_str(value: object) -> str:
    return redact_patterns(str(value))


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
