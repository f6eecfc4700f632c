"""An incremental reader of a streamed plan: it hands out each task the moment its JSON is complete.

The planner's reply is `{"rationale": ..., "tasks": [{...}, {...}]}`. `TaskStreamParser` scans the
growing text once, string- and escape-aware, tracks bracket depth, and cuts out every complete
object directly inside the top-level `"tasks"` array. Pure and sync: no I/O, no clock.
"""

from __future__ import annotations

import json

from orchestrator.models import TaskSpec

from .schemas import TaskOut, to_task_spec


class TaskStreamParser:
    """Feed it text deltas; it returns the tasks completed by each delta.

    A task object that is not valid JSON or does not fit `TaskOut` is skipped: the full reply is
    validated once the stream ends, and that validation reports it. So is a task with a blank id
    or instruction, or an id already handed out: plan validation rejects those.
    """

    def __init__(self) -> None:
        self._text: list[str] = []
        self._buffer = ""
        """Text not yet consumed by a finished task object (starts at the open object, if any)."""
        self._stack: list[str] = []
        """Open brackets of the whole reply, outermost first."""
        self._in_string = False
        self._escaped = False
        self._string_start = 0
        self._key: str | None = None
        """The last complete string at the top level of the reply object (a key candidate)."""
        self._value_key: str | None = None
        """The key whose value is being read at the top level of the reply object."""
        self._tasks_depth: int | None = None
        """Stack depth inside the `tasks` array while reading it."""
        self._object_start: int | None = None
        self._is_done = False
        """The tasks array has closed: later text (another array, a second reply) is ignored."""
        self._seen: set[str] = set()

    @property
    def emitted(self) -> int:
        """How many tasks were handed out so far."""
        return len(self._seen)

    @property
    def text(self) -> str:
        """Everything fed so far."""
        return "".join(self._text)

    def feed(self, delta: str) -> tuple[TaskSpec, ...]:
        """Consume one delta and return the tasks it completed, in order."""
        self._text.append(delta)
        if self._is_done:
            return ()
        start = len(self._buffer)
        self._buffer += delta
        found: list[TaskSpec] = []
        for index in range(start, len(self._buffer)):
            if self._is_done:
                break
            raw = self._step(self._buffer[index], index)
            if raw is not None and (task := self._accept(raw)) is not None:
                found.append(task)
        self._trim()
        return tuple(found)

    def _step(self, char: str, index: int) -> str | None:
        """Advance over one character; return a task object's text when `char` closes it."""
        if self._in_string:
            self._string_char(char, index)
        elif char == '"':
            self._in_string = True
            self._string_start = index
        elif char in "{[":
            self._open(char, index)
        elif char in "}]":
            return self._close(char, index)
        elif len(self._stack) == 1:
            self._top_level_char(char)
        return None

    def _string_char(self, char: str, index: int) -> None:
        if self._escaped:
            self._escaped = False
        elif char == "\\":
            self._escaped = True
        elif char == '"':
            self._in_string = False
            if self._stack == ["{"]:
                self._key = self._buffer[self._string_start + 1 : index]

    def _top_level_char(self, char: str) -> None:
        if char == ":":
            self._value_key, self._key = self._key, None
        elif char == ",":
            self._value_key = self._key = None

    def _open(self, char: str, index: int) -> None:
        depth = len(self._stack)
        if char == "[" and self._stack == ["{"] and self._value_key == "tasks":
            self._tasks_depth = depth + 1
        elif char == "{" and self._tasks_depth is not None and depth == self._tasks_depth:
            self._object_start = index
        self._stack.append(char)

    def _close(self, char: str, index: int) -> str | None:
        if not self._stack:
            return None  # stray closer outside any JSON (prose around the reply)
        self._stack.pop()
        depth = len(self._stack)
        if self._tasks_depth is None:
            return None
        if char == "]" and depth < self._tasks_depth:
            self._tasks_depth = None
            self._is_done = True
            return None
        if char == "}" and depth == self._tasks_depth and self._object_start is not None:
            raw = self._buffer[self._object_start : index + 1]
            self._object_start = None
            return raw
        return None

    def _accept(self, raw: str) -> TaskSpec | None:
        try:
            task = to_task_spec(TaskOut.model_validate(json.loads(raw)))
        except ValueError:  # bad JSON or schema; the final validation of the reply reports it
            return None
        if not task.id or not task.instruction or task.id in self._seen:
            return None
        self._seen.add(task.id)
        return task

    def _trim(self) -> None:
        """Drop consumed text so each delta costs O(len(delta)), except inside an open object."""
        keep = len(self._buffer)
        if self._object_start is not None:
            keep = self._object_start
        if self._in_string:
            keep = min(keep, self._string_start)
        if keep == 0:
            return
        self._buffer = self._buffer[keep:]
        if self._object_start is not None:
            self._object_start -= keep
        if self._in_string:
            self._string_start -= keep
