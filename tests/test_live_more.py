"""The live view's rarer moments: a stop reason in the title, transport retries in the totals, a
resumed run, a run closed before any task was ready, a terminal that fails while the drawing
thread redraws, and the log stream's file protocol."""

from __future__ import annotations

import dataclasses
import io
import threading
import time

from rich.console import Console

from orchestrator.events import ModelCallRetried, RunResumed, TaskReady
from orchestrator.live import LiveView, render_progress

from .test_fold import RUN, STOPPED, A, B, planned, started, succeeded, validated
from .test_live_view import EVENTS, finished_run, progress_of, rows_of, text_of
from .test_show import START


class _Terminal(io.StringIO):
    """A terminal in memory whose cursor moves (what a live redraw writes) can be made to fail."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = threading.Event()

    def write(self, s: str, /) -> int:
        if self.broken.is_set() and "\x1b[" in s:
            raise OSError("terminal gone")
        return super().write(s)

    def console(self) -> Console:
        return Console(file=self, force_terminal=True, width=120, height=40, color_system=None)


def _retry(try_number: int) -> ModelCallRetried:
    return ModelCallRetried(
        run_id=RUN,
        at=2.0,
        role="worker",
        model="m",
        task_id=A,
        try_number=try_number,
        error_type="ModelAPIError",
        status_code=503,
        message="overloaded",
        delay_s=0.1,
        cooldown_s=0.0,
    )


def test_title_names_a_stop_that_is_not_the_status_and_totals_count_transport_retries() -> None:
    progress = progress_of((*EVENTS, STOPPED, _retry(1), _retry(2)))
    text = text_of(render_progress(progress, now=6.0))
    assert text.splitlines()[0].startswith("run r1  running (budget: spent)  count the words")
    assert "retries 0  transport retries 2  elapsed" in text.splitlines()[-1]
    stopped = progress_of((*EVENTS, dataclasses.replace(STOPPED, reason="partial")))
    stopped.apply(finished_run("partial"))
    title = text_of(render_progress(stopped, now=6.0)).splitlines()[0]
    assert title.startswith("run r1  partial  count") and "(partial)" not in title


def test_a_resumed_run_says_so_before_its_table() -> None:
    term = _Terminal()
    view = LiveView(term.console(), clock=lambda: 12.0)
    view.emit(RunResumed(run_id=RUN, at=10.0, pid=4))
    assert term.getvalue() == "run r1: resumed\n"
    assert not view.is_live


def test_closing_before_any_task_was_ready_prints_the_table_once() -> None:
    term = _Terminal()
    view = LiveView(term.console(), clock=lambda: 3.0)
    for event in (START, planned(A), planned(B, A)):
        view.emit(event)
    assert not view.is_live
    view.close()
    rows = rows_of(term.getvalue())
    assert [cells[0] for cells in rows.values()] == ["waiting", "waiting"]
    printed = term.getvalue()
    view.emit(TaskReady(run_id=RUN, at=4.0, task_id=A))  # closed: nothing more is drawn
    view.close()
    assert term.getvalue() == printed and not view.is_live


def test_a_view_closed_with_no_tasks_prints_nothing_more() -> None:
    term = _Terminal()
    view = LiveView(term.console(), clock=lambda: 3.0)
    view.emit(START)
    before = term.getvalue()
    view.close()
    assert term.getvalue() == before


def test_a_terminal_that_fails_during_a_redraw_turns_the_view_into_plain_lines() -> None:
    term = _Terminal()
    view = LiveView(term.console(), clock=lambda: 6.0, refresh_per_second=50)
    for event in (START, planned(A), validated(A), TaskReady(run_id=RUN, at=2.0, task_id=A)):
        view.emit(event)
    assert view.is_live
    term.broken.set()
    view.emit(started(A, 1))  # wakes the drawing thread, whose redraw fails
    said = "live view off (OSError: terminal gone); plain lines follow\n"
    deadline = time.monotonic() + 5
    while said not in term.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert said in term.getvalue() and not view.is_live
    view.emit(succeeded(A))  # plain lines from now on
    after = term.getvalue().split(said, 1)[1]
    assert after.startswith("  done   a [mini]") and "\x1b[" not in after


def test_the_drawing_thread_redraws_after_an_event() -> None:
    term = _Terminal()
    view = LiveView(term.console(), clock=lambda: 6.0, refresh_per_second=50)
    for event in (START, planned(A), validated(A), TaskReady(run_id=RUN, at=2.0, task_id=A)):
        view.emit(event)
    assert rows_of(term.getvalue())[A][0] == "ready"
    view.emit(started(A, 1))  # the run's thread only wakes the drawer
    deadline = time.monotonic() + 5
    while rows_of(term.getvalue())[A][0] != "running" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rows_of(term.getvalue())[A][:3] == ["running", "mini", "1"]
    view.close()
    assert not view.is_live


def test_log_stream_is_a_writable_stream_with_the_fallbacks_tty_state() -> None:
    view = LiveView(_Terminal().console())
    plain = io.StringIO()
    log = view.log_stream(plain)
    assert log.writable() and not log.isatty()
    assert log.write("line\n") == 5
    log.flush()
    assert plain.getvalue() == "line\n"
