"""`orchestrator run --json`: every event of the run as one JSON object per line on stdout.

The schema is documented in docs/jsonl.md: each line is the event as the journal stores it
(`journal.encode`: `kind` first, credentials redacted) plus `v`, the schema version.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, TextIO

from .events import Event
from .journal import encode

if TYPE_CHECKING:
    from .models import RunResult

JSONL_VERSION = 1
"""Bumped only by a change a reader could trip on (a field renamed, removed or retyped); new
fields and new event kinds keep the version."""
_VERSION_SUFFIX = f',"v":{JSONL_VERSION}}}'


def json_line(event: Event) -> str:
    """The event as one line of JSON (no newline inside: JSON escapes every control character)."""
    body = encode(event)
    return body[:-1] + _VERSION_SUFFIX


def result_line(result: RunResult) -> str:
    """The stream's last line: `{"kind":"result","v":1,...}` with the result as result.json holds
    it (credentials redacted), on one line."""
    from .store import result_json

    data = json.loads(result_json(result))
    line = {"kind": "result", "v": JSONL_VERSION, **data}
    return json.dumps(line, separators=(",", ":"), ensure_ascii=False)


class JsonLinesSink:
    """Writes each event of a run as one JSON line to `stream`, flushed per line so a reader sees
    it at once.

    The stream starts at `run_started` (or `run_resumed`): a plan previewed without a run
    (`--plan-only`) emits its planner's events too, and its output is the preview alone. A reader
    that goes away (`| head`) ends the stream, not the run: the run is journaled anyway.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream: TextIO | None = stream
        self._started = False

    def emit(self, event: Event) -> None:
        stream = self._stream
        self._started = self._started or event.kind in ("run_started", "run_resumed")
        if stream is None or not self._started:
            return
        try:
            stream.write(json_line(event) + "\n")
            stream.flush()
        except BrokenPipeError:
            self._stream = None  # the reader closed the pipe; the journal keeps the record
