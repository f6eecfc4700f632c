"""A run's journal: every event in sequence in `<run_dir>/journal.sqlite3`; the run's truth.

SQLite in WAL mode with one writer. Events are buffered and committed in groups: before new work
is dispatched when an outcome it may build on is buffered, before a side effect (a patch) is
written, at the end, and otherwise within `_MAX_BUFFER_S`; so a crash never loses something
another step already acted on. `synchronous=NORMAL` survives a killed
process (the OS keeps the WAL); `durability="machine"` also fsyncs each commit for power loss.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Literal, TypeVar, cast

import anyio.from_thread
from pydantic import TypeAdapter

from .errors import JournalError, JournalMismatchError
from .events import Event, EventSink, PatchApplied
from .fold import RunState, apply, fold
from .models import PatchRecord, RunId, TaskId
from .secrets import has_hint, redact_patterns

_T = TypeVar("_T")
JOURNAL_FILE = "journal.sqlite3"
SCHEMA_VERSION = 1
Durability = Literal["process", "machine"]

_EVENT: TypeAdapter[Event] = TypeAdapter(Event)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    body TEXT NOT NULL
);
"""
_OUTCOMES = frozenset(
    {
        "run_started",
        "run_resumed",
        "plan_validated",
        "graph_replanned",
        "task_succeeded",
        "task_failed",
        "task_skipped",
        "task_unreviewed",
        "merge_started",
        "workspace_merged",
        "dispatch_stopped",
        "answer_written",
        "run_finished",
    }
)
"""Events that later work builds on: buffered ones are committed before anything new starts."""
_MAX_BUFFER_S = 0.25
"""Events older than this are committed with the next one even without a barrier (usage of long
model calls, tool calls): a crash loses at most this much of the record."""


def encode(event: Event) -> str:
    """The event as one JSON object, kind first, credentials redacted (what the journal stores)."""
    return _encode(event)[0]


def _encode(event: Event) -> tuple[str, bool]:
    """(JSON, whether redaction changed it).

    Most events hold no string a credential pattern could match: those are dumped as they are
    (one cheap hint check over all their strings); the others are redacted string by string.
    """
    data: dict[str, object] = {"kind": event.kind}
    strings: list[str] = []
    for name in _field_names(type(event)):
        value = data[name] = getattr(event, name)
        if type(value) is str:
            strings.append(value)
        elif type(value) not in _SCALARS:
            _collect(value, strings)
    redacted = has_hint("\n".join(strings)) and any(redact_patterns(t) != t for t in strings)
    if redacted:
        data = {name: _plain(value) for name, value in data.items()}
    return _ENCODER.encode(data), redacted


_SCALARS: frozenset[type] = frozenset({int, float, bool, type(None)})


def _collect(value: object, out: list[str]) -> None:
    """Every string inside `value` (keys included), for the hint check."""
    kind = type(value)
    if kind is str:
        out.append(cast("str", value))
    elif kind in _SCALARS:
        return
    elif isinstance(value, str):
        out.append(value)
    elif isinstance(value, tuple | list):
        for item in cast("Sequence[object]", value):
            _collect(item, out)
    elif isinstance(value, Mapping):
        for key, item in cast("Mapping[object, object]", value).items():
            out.append(str(key))
            _collect(item, out)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for name in _field_names(type(value)):
            _collect(getattr(value, name), out)


def _as_json(value: object) -> object:
    """What `json.dumps` cannot encode by itself: nested dataclasses and other mappings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: getattr(value, name) for name in _field_names(type(value))}
    if isinstance(value, Mapping):
        return dict(cast("Mapping[str, object]", value))
    return redact_patterns(str(value))


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_as_json)
"""One encoder for every event (`json.dumps` with options builds a new one per call)."""


def decode(body: str | bytes) -> Event:
    """An event from its journal JSON."""
    return _EVENT.validate_json(body)


_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls) if f.name != "kind")
    return names


def _plain(value: object) -> object:
    """JSON-ready data in one pass, every string redacted (the data, not the JSON text: in the
    text an escape such as `\\n` right before a key would hide it from the patterns)."""
    if isinstance(value, str):
        return redact_patterns(value)
    if value is None or isinstance(value, int | float):
        return value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in cast("Sequence[object]", value)]
    if isinstance(value, Mapping):
        items = cast("Mapping[object, object]", value).items()
        return {str(k): _plain(v) for k, v in items}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: _plain(getattr(value, name)) for name in _field_names(type(value))}
    return redact_patterns(str(value))


class Journal:
    """Owns one run's journal file; one writer at a time."""

    def __init__(self, path: Path, *, durability: Durability = "process") -> None:
        self.path = path
        self._db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        sync = "FULL" if durability == "machine" else "NORMAL"
        self._db.execute(f"PRAGMA synchronous={sync}")
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        elif int(row[0]) > SCHEMA_VERSION:
            self._db.close()
            raise JournalError(
                f"{path} has journal schema {row[0]}; this orchestrator reads up to "
                f"{SCHEMA_VERSION}: upgrade orchestrator to resume it"
            )
        self._pending: list[tuple[int, str, str]] = []
        self._urgent = False
        self._oldest = 0.0
        self.commits = 0

    @classmethod
    def open_existing(cls, run_dir: Path) -> Journal:
        """The journal of a run that already exists.

        Raises:
            JournalError: there is no journal in `run_dir`.
        """
        path = run_dir / JOURNAL_FILE
        if not path.is_file():
            raise JournalError(f"no journal at {path}: not a run directory, or a run from before")
        return cls(path)

    def append(self, seq: int, kind: str, body: str) -> None:
        """Buffer one event; it is durable after the next commit."""
        if not self._pending:
            self._oldest = time.monotonic()
        self._pending.append((seq, kind, body))
        if kind in _OUTCOMES:
            self._urgent = True
        elif time.monotonic() - self._oldest > _MAX_BUFFER_S:
            self.commit()

    @property
    def has_pending(self) -> bool:
        """Events are buffered that no commit has written yet."""
        return bool(self._pending)

    def barrier(self) -> None:
        """Commit before new work starts, if what is buffered decides something work relies on
        (a task's outcome, the plan): a dependent never starts on an unrecorded success."""
        if self._urgent:
            self.commit()

    def commit(self) -> None:
        """Write every buffered event in one transaction."""
        if not self._pending:
            return
        rows, self._pending, self._urgent = self._pending, [], False
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT INTO events (seq, kind, body) VALUES (?,?,?)", rows)
        self.commits += 1

    def rows(self, after: int = 0) -> Iterator[tuple[int, str]]:
        """(seq, body) of committed events after `after`, in order."""
        cursor = self._db.execute(
            "SELECT seq, body FROM events WHERE seq > ? ORDER BY seq", (after,)
        )
        yield from cursor

    def events(self, after: int = 0) -> list[Event]:
        return [decode(body) for _, body in self.rows(after)]

    def export_jsonl(self, path: Path) -> None:
        """Write `events.jsonl` (one event per line), a projection of the journal."""
        tmp = path.with_suffix(".jsonl.tmp")
        with tmp.open("w", encoding="utf-8") as out:
            for _, body in self.rows():
                out.write(body + "\n")
        tmp.replace(path)

    def close(self) -> None:
        self.commit()
        self._db.close()


def read_events(run_dir: Path) -> list[Event]:
    """Every committed event of the run in `run_dir`, in order."""
    journal = Journal.open_existing(run_dir)
    try:
        return journal.events()
    finally:
        journal.close()


def read_state(run_dir: Path) -> RunState:
    """The run's state: the fold of its journal."""
    return fold(read_events(run_dir))


class Recorder:
    """The run's one writer: journals each event, applies it to the live state, then fans it out.

    Every event of a run passes here, from the engine, the gateway and the tools alike, on the
    event loop's thread, so the journal's order is the order the state saw.
    """

    def __init__(
        self,
        journal: Journal,
        state: RunState,
        sinks: Sequence[EventSink] = (),
        *,
        verify: bool = False,
    ) -> None:
        self.journal = journal
        self.state = state
        self._sinks = tuple(sinks)
        self._shadow: RunState | None = fold(journal.events()) if verify else None

    def emit(self, event: Event) -> None:
        body, redacted = _encode(event)
        if redacted:  # the state and every sink see what the journal keeps
            event = decode(body)
        apply(self.state, event)
        self.journal.append(self.state.seq, event.kind, body)
        for sink in self._sinks:
            sink.emit(event)

    def barrier(self) -> None:
        """Before new work starts: commit the outcomes it may build on (see `Journal.barrier`)."""
        self.journal.barrier()
        if self._shadow is not None:
            self._verify(self._shadow)

    def commit(self) -> None:
        """Make everything so far durable (before a side effect, at the end)."""
        self.journal.commit()
        if self._shadow is not None:
            self._verify(self._shadow)

    def _verify(self, shadow: RunState) -> None:
        if self.journal.has_pending:
            return  # the live state is ahead of the disk until the next commit
        for _, body in self.journal.rows(shadow.seq):
            apply(shadow, decode(body))
        if shadow != self.state:
            message = (
                f"journal mismatch: the fold of {shadow.seq} events differs from the live state "
                f"in {_difference(shadow, self.state)}"
            )
            print(message, file=sys.stderr, flush=True)
            raise JournalMismatchError(message)


class JournalEffects:
    """The `EffectLog` tools see: patches are looked up in the state and journaled write-ahead.

    Tools may call it from a worker thread (apply_patch writes files off the event loop); the
    recorder has one writer, the event loop's thread, so calls from elsewhere hop onto it.
    """

    def __init__(self, recorder: Recorder, run_id: RunId, clock: Callable[[], float]) -> None:
        self._recorder, self._run_id, self._clock = recorder, run_id, clock
        self._loop_thread = threading.get_ident()

    def find(self, task_id: TaskId, key: str) -> PatchRecord | None:
        return self._on_loop(lambda: self._recorder.state.patches.get((task_id, key)))

    def record(self, record: PatchRecord) -> None:
        self._on_loop(lambda: self._record(record))

    def _record(self, record: PatchRecord) -> None:
        self._recorder.emit(
            PatchApplied(
                run_id=self._run_id,
                at=self._clock(),
                task_id=record.task_id,
                key=record.key,
                files=record.files,
            )
        )
        self._recorder.commit()

    def _on_loop(self, fn: Callable[[], _T]) -> _T:
        if threading.get_ident() == self._loop_thread:
            return fn()
        return anyio.from_thread.run_sync(fn)


def _difference(folded: RunState, live: RunState) -> str:
    """Where two states differ: the first field (and task), both values, for the error line."""
    for f in dataclasses.fields(RunState):
        a, b = getattr(folded, f.name), getattr(live, f.name)
        if a == b:
            continue
        if f.name == "tasks":
            for tid in dict.fromkeys([*folded.tasks, *live.tasks]):
                ta, tb = folded.tasks.get(tid), live.tasks.get(tid)
                if ta != tb:
                    return f"tasks[{tid}]: folded {ta!r} != live {tb!r}"
        return f"{f.name}: folded {a!r} != live {b!r}"
    return "nothing (equal)"
