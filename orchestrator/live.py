"""The live view of `orchestrator run` on a terminal: a table of the DAG's tasks (status, tier,
attempt, elapsed, cost) with the run's totals, escalations and an ETA, redrawn in place by rich.

`render_progress` lays out a `Progress` (pure, for tests and captures); `LiveView` is the event
sink that keeps one and drives a `rich.live.Live` with it.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Literal, TextIO, cast

from rich import box
from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.file_proxy import FileProxy
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .events import Event
from .progress import ACTIVE, Progress, TaskProgress, TaskStatus, one_line
from .report import ProgressSink
from .show import cost_text, duration_text

_STYLES: Mapping[str, str] = {
    "succeeded": "green",
    "failed": "bold red",
    "skipped": "dim",
    "unreviewed": "magenta",
    "running": "bold yellow",
    "reviewing": "cyan",
    "merging": "cyan",
    "retrying": "yellow",
    "escalated": "bold magenta",
    "ready": "blue",
    "waiting": "dim",
    "completed": "bold green",
    "partial": "bold yellow",
    "cancelled": "bold yellow",
}
_SHOWN_FIRST: Mapping[TaskStatus, int] = {
    "running": 0,
    "reviewing": 0,
    "merging": 0,
    "retrying": 1,
    "escalated": 1,
    "failed": 1,
    "unreviewed": 1,
    "ready": 2,
    "waiting": 3,
    "skipped": 4,
    "succeeded": 5,
}
"""When the table is taller than the terminal, the rows kept: work in progress first."""
_STARTS = frozenset({"task_ready", "task_started", "task_skipped", "task_failed"})
"""The live display starts with the first of these: after `--approve`'s prompt, if any."""
_MIN_REFRESH_S = 0.1
"""Redraws are at least this far apart, and at least three times as far as the last one took:
drawing a big table costs rich tens of milliseconds, and it holds the GIL the run needs."""
_CHROME_LINES = 7
"""Lines besides task rows: title, table header and rule, hidden-rows line, totals, margin."""


def render_progress(
    progress: Progress, *, now: float, max_rows: int | None = None
) -> RenderableType:
    """The title, the task table and the totals; at most `max_rows` task rows (None: all)."""
    rows, hidden = _visible(list(progress.tasks.values()), max_rows)
    parts: list[RenderableType] = [_title(progress), _table(progress, rows, now)]
    if hidden:
        parts.append(Text(f"+{sum(hidden.values())} more: {_tally(hidden)}", style="dim"))
    return Group(*parts, _totals(progress, now))


def _title(p: Progress) -> Text:
    text = Text("run ", style="bold")
    text.append(p.run_id or "-", style="bold")
    text.append("  ")
    text.append(p.phase, style=_STYLES.get(p.phase, "bold"))
    if p.stop_reason and p.stop_reason != p.phase:
        text.append(f" ({p.stop_reason})", style="yellow")
    if p.goal:
        text.append(f"  {one_line(p.goal, 120)}", style="dim")
    return text


_COLUMNS = ("task", "status", "tier", "attempt", "elapsed", "cost", "detail")
_RIGHT = frozenset({"attempt", "elapsed", "cost"})
_DETAIL_MAX = 80


def _table(p: Progress, rows: list[TaskProgress], now: float) -> Table:
    """The task rows. Column widths are worked out here from the cells' text: letting rich
    measure every cell is most of the cost of a redraw, which a big DAG pays several times a
    second."""
    cells = [_cells(p, row, now) for row in rows]
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=False)
    for i, name in enumerate(_COLUMNS):
        width = max((cell_len(c[i]) for c in cells), default=0)
        table.add_column(
            name,
            justify="right" if name in _RIGHT else "left",
            no_wrap=True,
            overflow="ellipsis",
            width=max(len(name), min(width, _DETAIL_MAX)),
        )
    for row, texts in zip(rows, cells, strict=True):
        status = Text(texts[1], style=_STYLES.get(row.status, ""))
        table.add_row(*texts[:1], status, *texts[2:6], Text(texts[6], style="dim"))
    return table


def _cells(p: Progress, row: TaskProgress, now: float) -> tuple[str, ...]:
    usage = p.ledger.by_task.get(row.id)
    elapsed = row.elapsed_s(now)
    return (
        row.id,
        row.status,
        row.tier or "-",
        str(row.attempt) if row.attempt else "-",
        "-" if elapsed is None else duration_text(elapsed),
        "-" if usage is None else cost_text(usage, detail=False),
        _detail(row),
    )


def _detail(row: TaskProgress) -> str:
    if row.status in ACTIVE and row.status != "reviewing":
        return one_line(f"{row.model} ({row.note})" if row.note else row.model, 200)
    return one_line(row.note, 200)


def _visible(
    rows: list[TaskProgress], max_rows: int | None
) -> tuple[list[TaskProgress], dict[str, int]]:
    """The rows that fit (plan order kept), and how many of each status were left out."""
    if max_rows is None or len(rows) <= max_rows:
        return rows, {}
    keep = max(1, max_rows - 1)  # one line says what was left out
    ranked = sorted(range(len(rows)), key=lambda i: (_SHOWN_FIRST[rows[i].status], i))
    kept = set(ranked[:keep])
    hidden: dict[str, int] = {}
    for i, row in enumerate(rows):
        if i not in kept:
            hidden[row.status] = hidden.get(row.status, 0) + 1
    return [row for i, row in enumerate(rows) if i in kept], hidden


def _tally(by_status: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {status}" for status, n in by_status.items())


def _totals(p: Progress, now: float) -> Text:
    c = p.counts()
    waiting = c.total - c.finished - c.active
    text = Text(f"tasks {c.finished}/{c.total} done", style="bold")
    if not p.plan_complete and p.plan_seen:
        text.append(" (plan still streaming)", style="dim")
    text.append(
        f": {c.succeeded} succeeded, {c.failed} failed, {c.skipped} skipped, "
        f"{c.unreviewed} unreviewed; {c.active} in progress, {waiting} waiting\n"
    )
    tokens = p.ledger.total.tokens
    text.append(cost_text(p.ledger.total, detail=False), style="bold")
    text.append(
        f"  {tokens.input_tokens:,} in / {tokens.output_tokens:,} out tokens, "
        f"{p.ledger.calls} calls  escalations {p.escalations}  retries {p.retries}"
    )
    if p.ledger.retries:
        text.append(f"  transport retries {p.ledger.retries}")
    end = p.finished_at if p.finished_at is not None else now
    if p.started_at is not None:
        text.append(f"  elapsed {duration_text(max(0.0, end - p.started_at))}")
    if not p.status:
        text.append(f"  {_eta_text(p, now)}", style="bold")
    return text


def _eta_text(p: Progress, now: float) -> str:
    if p.phase == "answering":
        return "ETA: writing the answer"
    eta = p.eta_s(now)
    return "ETA -" if eta is None else f"ETA {duration_text(eta)}"


class LiveView:
    """An `EventSink` that shows the run as a live table on a terminal, redrawn by rich.

    It starts drawing with the first task that is ready (so a plan's approval prompt is left
    alone), redraws on each event that changes a row and on a timer (the clocks), and stops at
    `run_finished`, leaving the final table on the screen. `close()` (also run at exit, e.g.
    after Ctrl-C outside the CLI) stops it if the run ended without `run_finished`. It never
    raises into the run: a failure of its own turns it off, says so in one line and goes on in
    plain lines (`report.ProgressSink`).
    """

    def __init__(
        self,
        console: Console | None = None,
        *,
        history: Mapping[str, float] | None = None,
        clock: Callable[[], float] = time.time,
        refresh_per_second: float = 4.0,
    ) -> None:
        self.console = console if console is not None else Console()
        self._progress = Progress(history=history or {})
        self._clock = clock
        self._lock = threading.RLock()
        self._state: Literal["idle", "live", "closed"] = "idle"
        self._period = 1.0 / refresh_per_second
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._drawer: threading.Thread | None = None
        self._fallback: ProgressSink | None = None
        """Plain lines, once the view itself failed."""
        self._live = Live(
            console=self.console,
            get_renderable=self._renderable,
            auto_refresh=False,  # drawn by `_draw`: on events as well as on a timer
            transient=False,
            redirect_stdout=True,
            redirect_stderr=True,
        )

    @property
    def is_live(self) -> bool:
        """Whether the table is on the screen being redrawn."""
        return self._state == "live"

    def emit(self, event: Event) -> None:
        try:
            if self._fallback is not None:
                self._fallback.emit(event)
            elif self._state != "closed":
                self._update(event)
        except Exception as exc:  # a view must not break the run it watches
            if self._fallback is None:
                self._give_up(exc)
            # else the plain lines failed too (the terminal is gone): the journal has the record

    def close(self) -> None:
        """Stop drawing, leaving the last table on the screen; idempotent."""
        with self._lock:
            state, self._state = self._state, "closed"
        atexit.unregister(self.close)
        self._closing.set()
        self._wake.set()
        if self._drawer is not None and self._drawer is not threading.current_thread():
            self._drawer.join(timeout=5)
        if state == "live":
            self._live.stop()
        elif state == "idle" and self._progress.tasks:
            self.console.print(self._renderable())

    def log_stream(self, fallback: TextIO | None = None) -> TextIO:
        """A stream for log lines: above the table while it is live, else to `fallback` (stderr)."""
        stream = _LogStream(self, fallback if fallback is not None else sys.stderr)
        return cast("TextIO", stream)  # io.TextIOBase does what loggers use of TextIO

    def _update(self, event: Event) -> None:
        with self._lock:
            self._progress.apply(event)
        if event.kind == "run_started":
            self.console.print(self._title_line("planning"), highlight=False)
        elif event.kind == "run_resumed":
            self.console.print(self._title_line("resumed"), highlight=False)
        elif event.kind == "run_finished":
            self.close()
        elif self._state == "idle" and event.kind in _STARTS:
            self._start()
        elif self._state == "live":
            self._refresh()

    def _title_line(self, what: str) -> Text:
        p = self._progress
        return Text(f"run {p.run_id}: {what}" + (f"  {one_line(p.goal, 120)}" if p.goal else ""))

    def _start(self) -> None:
        self._state = "live"
        atexit.register(self.close)
        self._live.start(refresh=True)
        self._drawer = threading.Thread(target=self._draw, name="live-view", daemon=True)
        self._drawer.start()

    def _refresh(self) -> None:
        self._wake.set()  # the drawing thread redraws soon; the run's thread never draws

    def _draw(self) -> None:
        """Redraw when woken by an event, else every `_period` (the clocks), never too often."""
        while self._state == "live":
            self._wake.wait(self._period)
            self._wake.clear()
            if self._state != "live":
                return
            began = time.monotonic()
            try:
                self._live.refresh()
            except Exception as exc:  # the terminal failed: plain lines from the next event on
                self._give_up(exc)
                return
            self._closing.wait(max(_MIN_REFRESH_S, 3 * (time.monotonic() - began)))

    def _renderable(self) -> RenderableType:
        with self._lock:
            done = self._state == "closed"
            rows = None if done else max(3, self.console.height - _CHROME_LINES)
            return render_progress(self._progress, now=self._clock(), max_rows=rows)

    def _give_up(self, exc: Exception) -> None:
        """Stop drawing and go on in plain lines (a broken terminal may fail again: then quiet)."""
        live = self._state == "live"
        self._state = "closed"
        self._closing.set()
        atexit.unregister(self.close)
        out = self.console.file
        self._fallback = ProgressSink(lambda line: print(line, file=out, flush=True))
        if live:
            with contextlib.suppress(Exception):
                self._live.stop()
        with contextlib.suppress(Exception):
            print(f"live view off ({type(exc).__name__}: {exc}); plain lines follow", file=out)


class _LogStream(io.TextIOBase):
    """Log lines go above the live table while it is drawn (rich's `FileProxy`), else as they are.

    Another writer to the terminal would tear the table: rich redraws it in place.
    """

    def __init__(self, view: LiveView, fallback: TextIO) -> None:
        super().__init__()
        self._view = view
        self._fallback = fallback
        self._proxy = FileProxy(view.console, fallback)

    def write(self, s: str, /) -> int:
        """Write `s` to where it shows without tearing the table; returns len(s)."""
        (self._proxy if self._view.is_live else self._fallback).write(s)
        return len(s)

    def flush(self) -> None:
        """Flush the fallback (the proxy prints whole lines as they come)."""
        self._fallback.flush()

    def isatty(self) -> bool:
        """Whether the fallback is a terminal (renderers pick colours from this)."""
        return self._fallback.isatty()

    def writable(self) -> bool:
        """Always: this stream only writes."""
        return True
