"""Watching a run: the progress fold and its ETA, the live table rendered from scripted events,
the plain lines, then the real CLI in a pipe (plain lines) and in a real terminal (tmux)."""

from __future__ import annotations

import dataclasses
import io
import os
import re
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from rich.console import Console, RenderableType

from orchestrator.events import Event, RunFinished, RunResumed, TaskReady
from orchestrator.live import LiveView, render_progress
from orchestrator.models import TaskId, TaskSpec
from orchestrator.plan import task_key
from orchestrator.progress import Progress
from orchestrator.report import ProgressSink

from .cli_watch import (
    Pane,
    cli_args,
    cli_env,
    exit_status,
    run_script,
    table_rows,
    task_ids,
    tmux_or_skip,
    watched_server,
)
from .test_fold import (
    ENDED,
    RUN,
    A,
    B,
    C,
    called,
    escalated,
    finished,
    planned,
    started,
    succeeded,
    validated,
)
from .test_show import START

# A at mini in 3s; B escalates to base and runs its second attempt; C waits for B.
EVENTS: tuple[Event, ...] = (
    START,
    planned(A),
    planned(B),
    planned(C, B),
    validated(A, B, C),
    TaskReady(run_id=RUN, at=2.0, task_id=A),
    started(A, 1),
    called(A),
    finished(A),
    succeeded(A),
    started(B, 1),
    called(B, cost=0.5),
    finished(B, "ambiguous"),
    escalated(B, "base"),
    started(B, 2, tier="base"),
)


def finished_run(status: str = "completed") -> RunFinished:
    return dataclasses.replace(ENDED, status=status)


def progress_of(events: Sequence[Event], **kwargs: object) -> Progress:
    progress = Progress(**kwargs)  # pyright: ignore[reportArgumentType]
    for event in events:
        progress.apply(event)
    return progress


def text_of(renderable: RenderableType, *, width: int = 120) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None, highlight=False)
    console.print(renderable)
    out = console.file
    assert isinstance(out, io.StringIO)
    return out.getvalue()


def rows_of(text: str) -> dict[str, list[str]]:
    """Table rows by task id: the cells split on runs of two or more spaces."""
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells and cells[0] in (A, B, C, "d"):
            rows[cells[0]] = cells[1:]
    return rows


# -- the live table -----------------------------------------------------------------------------
def test_live_table_shows_each_tasks_status_tier_attempt_elapsed_and_cost() -> None:
    text = text_of(render_progress(progress_of(EVENTS), now=6.0))
    assert text.splitlines()[0].startswith("run r1  running  count the words")
    assert rows_of(text) == {
        A: ["succeeded", "mini", "1", "3.0s", "$0.250000", "cut"],
        B: ["running", "base", "2", "4.0s", "$0.500000", "m (mini -> base: ambiguous)"],
        C: ["waiting", "mini", "-", "-", "-"],
    }
    header = next(line for line in text.splitlines() if line.startswith("task"))
    assert header.split() == ["task", "status", "tier", "attempt", "elapsed", "cost", "detail"]


def test_live_table_totals_count_tasks_cost_escalations_and_eta() -> None:
    """The ETA: b is expected to take what a took (3s) and has run 4s, c then takes 3s."""
    text = text_of(render_progress(progress_of(EVENTS), now=6.0))
    assert (
        "tasks 1/3 done: 1 succeeded, 0 failed, 0 skipped, 0 unreviewed; 1 in progress, "
        "1 waiting" in text
    )
    totals = text.splitlines()[-1]
    assert totals.startswith("$0.750000  200 in / 40 out tokens, 2 calls  escalations 1")
    assert totals.endswith("elapsed 5.5s  ETA 3.0s")


def test_live_table_of_a_finished_run_has_its_status_and_no_eta() -> None:
    text = text_of(render_progress(progress_of((*EVENTS, finished_run("partial"))), now=60.0))
    assert text.splitlines()[0].startswith("run r1  partial")
    assert text.splitlines()[-1].endswith("elapsed 9.0s")


def test_live_table_taller_than_the_screen_keeps_work_in_progress() -> None:
    events = [START, *(planned(TaskId(f"t{i}")) for i in range(10))]
    events += [started(TaskId("t7"), 1), succeeded(TaskId("t0"))]
    text = text_of(render_progress(progress_of(events), now=3.0, max_rows=4))
    shown = [line.split()[0] for line in text.splitlines() if re.match(r"t\d ", line)]
    assert shown == ["t1", "t2", "t7"]
    assert "+7 more: 1 succeeded, 6 waiting" in text


def test_live_table_long_details_are_cut_to_one_line() -> None:
    long = dataclasses.replace(succeeded(A), summary="word " * 200)
    text = text_of(render_progress(progress_of((START, planned(A), started(A, 1), long)), now=9))
    assert sum(line.startswith("a ") for line in text.splitlines()) == 1
    assert all(len(line) <= 120 for line in text.splitlines())


# -- the progress fold and its ETA --------------------------------------------------------------
def _estimated(tid: TaskId, est: float | None, *deps: TaskId) -> Event:
    spec = TaskSpec(id=tid, instruction=f"do {tid}", deps=deps, est_latency_s=est)
    return dataclasses.replace(planned(tid), spec=spec)


PLAN = (START, _estimated(A, 2.0), _estimated(B, 3.0, A), _estimated(C, 4.0), validated(A, B, C))


@pytest.mark.parametrize(
    ("events", "now", "eta"),
    [
        pytest.param(PLAN, 1.0, 5.0, id="critical_path_before_any_start"),
        pytest.param((*PLAN, started(A, 1)), 3.0, 8.0, id="owed_work_over_one_slot"),
        pytest.param(
            (*PLAN, started(A, 1), finished(A), succeeded(A)), 5.0, 10.5, id="scaled_by_a_late_task"
        ),
        pytest.param((START, planned(A), planned(B, A)), 1.0, None, id="nothing_to_go_by"),
        pytest.param((START, planned(A), planned(B, A), planned(A, B)), 1.0, None, id="a_cycle"),
        pytest.param(
            (*PLAN, started(A, 1), finished(A), succeeded(A), started(B, 1)),
            5.0,
            7.5,
            id="a_running_task_is_owed_the_rest",
        ),
    ],
)
def test_progress_eta(events: Sequence[Event], now: float, eta: float | None) -> None:
    """a: 2s, b: 3s after a, c: 4s. Once a started, one task at a time is all the run has shown
    (the owed 8s over one slot); a took 3s of its 2s: the rest are scaled by 1.5 (b 4.5s, c 6s)."""
    assert progress_of(events).eta_s(now) == eta


def test_progress_eta_uses_history_then_what_tasks_took_in_this_run() -> None:
    history = {task_key(TaskSpec(id=B, instruction="do b")): 7.0}
    events = (START, planned(A), planned(B), validated(A, B))
    assert progress_of(events).eta_s(1.0) is None
    assert progress_of(events, history=history).eta_s(1.0) is None  # a is still unknown
    done_a = (*events, started(A, 1), finished(A), succeeded(A))
    assert progress_of(done_a).eta_s(5.0) == 3.0  # b: what a took
    assert progress_of(done_a, history=history).eta_s(5.0) == 7.0  # b: its history


def test_progress_takes_a_resumed_stream_from_the_middle() -> None:
    """A resumed run's sinks never see the tasks planned before: rows are added as met."""
    resumed = RunResumed(run_id=RUN, at=10.0, pid=1)
    progress = progress_of((resumed, started(B, 2), called(B), finished(B), succeeded(B)))
    assert [(t.id, t.status, t.attempt) for t in progress.tasks.values()] == [(B, "succeeded", 2)]
    assert progress.started_at == 10.0 and progress.ledger.total.cost_usd == 0.25


# -- plain lines --------------------------------------------------------------------------------
def test_plain_lines_put_the_plan_first_and_carry_counts_time_cost_and_eta() -> None:
    lines: list[str] = []
    sink = ProgressSink(lines.append)
    for event in (START, _estimated(A, 2.0), started(A, 1), *PLAN[2:]):
        sink.emit(event)
    for event in (called(A), finished(A), succeeded(A)):
        sink.emit(event)
    assert lines == [
        "plan: 3 tasks, ETA 9.0s",
        "  start  a [mini m] attempt 1 | 1.5s",
        "  done   a [mini] 3.0s $0.250000: cut | 1/3 done, 4.5s, $0.250000, ETA 10.5s",
    ]


def test_plain_lines_wait_for_a_streaming_plan_only_so_long() -> None:
    lines: list[str] = []
    sink = ProgressSink(lines.append, plan_wait_s=5.0)
    late = dataclasses.replace(started(B, 1), at=7.0)
    for event in (START, planned(A), started(A, 1), planned(B), late, validated(A, B)):
        sink.emit(event)
    assert lines == [
        "plan: 2 tasks so far, still streaming (tasks start as they arrive)",
        "  start  a [mini m] attempt 1 | 1.5s",
        "  start  b [mini m] attempt 1 | 6.5s",
        "plan: 2 tasks",
    ]


# -- the sink -----------------------------------------------------------------------------------
class _Terminal:
    """A console writing to memory as if it were a terminal."""

    def __init__(self, *, fail: bool = False) -> None:
        self.out = _Failing() if fail else io.StringIO()
        self.console = Console(
            file=self.out, force_terminal=True, width=120, height=40, color_system=None
        )

    @property
    def text(self) -> str:
        return self.out.getvalue()


class _Failing(io.StringIO):
    def write(self, s: str, /) -> int:
        if "\x1b[" in s:  # the live display's cursor moves
            raise OSError("terminal gone")
        return super().write(s)


def test_live_view_draws_from_the_first_ready_task_and_stops_at_run_finished() -> None:
    term = _Terminal()
    view = LiveView(term.console, clock=lambda: 6.0, refresh_per_second=20)
    view.emit(START)
    assert term.text.startswith("run r1: planning  count the words\n")
    for event in EVENTS[1:6]:
        view.emit(event)
    assert view.is_live
    for event in (*EVENTS[6:], finished_run()):
        view.emit(event)
    assert not view.is_live
    final = term.text[term.text.rindex("run r1  completed") :]
    assert rows_of(final)[A][:2] == ["succeeded", "mini"]
    view.close()  # idempotent


def test_live_view_close_stops_a_run_that_never_finished() -> None:
    term = _Terminal()
    view = LiveView(term.console, clock=lambda: 6.0)
    for event in EVENTS:
        view.emit(event)
    assert view.is_live
    view.close()
    assert not view.is_live and "\x1b[?25h" in term.text  # the cursor is shown again


def test_live_view_never_raises_into_the_run_it_goes_on_in_plain_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    term = _Terminal(fail=True)
    view = LiveView(term.console, clock=lambda: 6.0)
    for event in (*EVENTS, called(B), finished(B), succeeded(B)):
        view.emit(event)
    assert "live view off (OSError: terminal gone); plain lines follow" in term.text
    assert "  done   b [mini]" in capsys.readouterr().out + term.text


class _Gone(io.StringIO):
    def write(self, s: str, /) -> int:
        raise OSError("terminal gone")


def test_live_view_never_raises_even_when_the_terminal_is_gone() -> None:
    console = Console(file=_Gone(), force_terminal=True, width=120, height=40)
    view = LiveView(console, clock=lambda: 6.0)
    for event in (*EVENTS, called(B), finished(B), succeeded(B), finished_run()):
        view.emit(event)
    assert not view.is_live


def test_live_view_log_lines_go_above_the_table_while_it_is_drawn() -> None:
    term = _Terminal()
    errors = io.StringIO()
    view = LiveView(term.console, clock=lambda: 6.0)
    log = view.log_stream(errors)
    log.write("before\n")
    for event in EVENTS:
        view.emit(event)
    log.write("during\n")
    view.close()
    assert errors.getvalue() == "before\n"
    assert "during" in term.text


# -- the real CLI -------------------------------------------------------------------------------
N_TASKS = 6
_ESC = "\x1b["


@pytest.mark.timeout(60)
def test_cli_not_a_terminal_prints_plain_lines_plan_first(tmp_path: Path) -> None:
    with watched_server(N_TASKS) as server:
        done = subprocess.run(
            cli_args(server, tmp_path),
            capture_output=True,
            text=True,
            env=cli_env(tmp_path / "runs"),
            cwd=tmp_path,
            timeout=50,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    assert _ESC not in done.stdout
    lines = done.stdout.splitlines()
    plan = re.fullmatch(rf"plan: {N_TASKS} tasks, ETA (\d\.\d)s", lines[0])
    assert plan is not None, lines[0]
    assert 1.0 < float(plan.group(1)) <= 2.0  # two layers of 1s estimates, less what ran
    progress = lines[1 : lines.index(next(x for x in lines if x.startswith("run ")))]
    assert {line.split()[1] for line in progress if line.startswith("  done")} == set(
        task_ids(N_TASKS)
    )
    last = progress[-1]
    assert f"| {N_TASKS}/{N_TASKS} done, " in last and ", $0." in last
    assert any(" ETA " in line for line in progress)


@pytest.fixture
def pane(tmp_path: Path) -> Iterator[Pane]:
    env = cli_env(tmp_path / "runs") | {"TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    made = Pane(tmux_or_skip(), f"orch-live-{os.getpid()}-{tmp_path.name}", env)
    try:
        yield made
    finally:
        made.close()


@pytest.mark.timeout(90)
def test_cli_live_table_in_a_real_terminal(tmp_path: Path, pane: Pane) -> None:
    ids = set(task_ids(N_TASKS))
    with watched_server(N_TASKS, latency_s=0.4) as server:
        script, status = run_script(tmp_path, cli_args(server, tmp_path))
        pane.start(script)
        mid = pane.wait(lambda s: "running" in s and "ETA" in s and set(table_rows(s)) == ids)
        assert re.search(r"^run \w+  running  Count the words of every item\.", mid, re.M)
        assert re.search(rf"^tasks \d/{N_TASKS} done\b", mid, re.M)
        statuses = {row[0] for row in table_rows(mid).values()}
        assert "running" in statuses and statuses <= {
            *("running", "reviewing", "succeeded", "waiting", "ready"),
        }
        assert exit_status(status) == 0
    final = pane.screen(history=True)
    table = final[final.rindex("  completed  ") :]
    rows = table_rows(table)
    assert set(rows) == ids and all(row[:2] == ["succeeded", "mini"] for row in rows.values())
    assert f"tasks {N_TASKS}/{N_TASKS} done: {N_TASKS} succeeded, 0 failed" in table
    assert re.search(r"^\$0\.\d{6}  [\d,]+ in / [\d,]+ out tokens", table, re.M)
    assert re.search(r"^run \w+: completed$", table, re.M) and "\nanswer:\n" in table
    assert pane.cursor_visible()


@pytest.mark.timeout(90)
def test_cli_live_table_stops_cleanly_on_ctrl_c(tmp_path: Path, pane: Pane) -> None:
    with watched_server(N_TASKS, latency_s=0.5) as server:
        script, status = run_script(tmp_path, cli_args(server, tmp_path))
        pane.start(script)
        pane.wait(lambda s: "running" in s and "ETA" in s)
        pane.keys("C-c")
        assert exit_status(status) == 130
    final = pane.screen(history=True)
    assert "cancelling: stopping every task" in final
    table = final[final.rindex("  cancelled  ") :]
    assert set(table_rows(table)) == set(task_ids(N_TASKS))
    assert re.search(r"^run \w+: cancelled$", table, re.M)
    assert pane.cursor_visible()
