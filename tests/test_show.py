"""`runs show`: the renderer on folds of scripted events, then the real CLI on real runs (a
finished one against a loopback OpenAI-protocol server, and one still in progress)."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import pytest

from orchestrator.events import Event, RunStarted, TaskFailed
from orchestrator.fold import RunState, fold
from orchestrator.journal import JOURNAL_FILE, Journal, Recorder
from orchestrator.models import RunId, TaskId, TokenUsage, Usage
from orchestrator.show import cost_text, duration_text, listed_cost, render_run
from orchestrator.store import RunStore

from .fault_openai import ApiCall, Reply
from .kill_harness import CliRun, run_cli, run_root, serving
from .kill_model import GOAL, KillModel, KillShape, task_of
from .test_fold import (
    ANSWERED,
    ENDED,
    RUN,
    A,
    B,
    C,
    called,
    escalated,
    finished,
    planned,
    skipped,
    started,
    succeeded,
    unreviewed,
    validated,
)

D = TaskId("d")
START = RunStarted(
    run_id=RUN,
    at=0.5,
    goal="count the words",
    ladder=("m-mini", "m-base", "m-top"),
    tiers=("mini", "base", "frontier"),
)
B_FAILED = TaskFailed(
    run_id=RUN,
    at=7.0,
    task_id=B,
    tier="base",
    attempts=2,
    error_type="ModelBehaviorError",
    message="no valid report",
)
PARTIAL_RUN: tuple[Event, ...] = (
    START,
    called(None, role="planner", model="m-top", tier="frontier", tokens_in=1000, cost=0.5),
    planned(A),
    planned(B),
    planned(C, B),
    validated(A, B, C),
    started(A, 1),
    called(A),
    finished(A),
    called(None, role="reviewer", model="m-top", tier="frontier", tokens_in=400, cost=0.125),
    succeeded(A),
    started(B, 1),
    called(B),
    finished(B, "ambiguous"),
    escalated(B, "base"),
    started(B, 2, tier="base"),
    called(B, model="m-base", tier="base", tokens_in=300, cost=1.0),
    finished(B, "invalid_output", attempt=2, tier="base"),
    escalated(B, None),
    B_FAILED,
    skipped(C, by=B),
    ANSWERED,
    dataclasses.replace(ENDED, stop_reason="budget: spent"),
)
"""a succeeds at mini; b escalates to base and fails there, so c (after b) is skipped."""

PARTIAL_TEXT = """\
run r1: partial
  goal         count the words
  stopped      budget: spent
  cost         $2.125000
  tokens       1,900 in (50 cached), 100 out (25 reasoning), 15 estimated
  calls        5 (0 transport retries)
  wasted       0 replies, $0.000000 (invalid, cut or abandoned)
  escalations  1 (replans 0)
tasks (3):
 task   status      tier   attempts   time    in   cached   out        cost   deps
-----------------------------------------------------------------------------------
 [a]    succeeded   mini          1   3.0s   100       10    20   $0.250000   -
 [b]    failed      base          2   5.0s   400       20    40   $1.250000   -
 [c]    skipped     -             0      -     -        -     -           -   b
  b: failed: ModelBehaviorError: no valid report
  c: skipped: why
cost by tier:
 tier       model    requests      in   cached   out        cost
-----------------------------------------------------------------
 mini       m-mini          2     200       20    40   $0.500000
 base       m-base          1     300       10    20   $1.000000
 frontier   m-top           2   1,400       20    40   $0.625000
-----------------------------------------------------------------
 total                      5   1,900       50   100   $2.125000
cost by role:
 role       requests      in   cached   out        cost
--------------------------------------------------------
 planner           1   1,000       10    20   $0.500000
 worker            3     500       30    60   $1.500000
 reviewer          1     400       10    20   $0.125000
--------------------------------------------------------
 total             5   1,900       50   100   $2.125000
answer:
  the answer"""


# -- the renderer -----------------------------------------------------------------------------
def test_show_plain_form_of_a_finished_run() -> None:
    """Header, the plan with each task's status, tier, attempts, time, tokens and cost, the
    reasons of what did not succeed, cost by tier and by role, the answer: plain text."""
    assert render_run(fold(PARTIAL_RUN)) == PARTIAL_TEXT


def test_show_plain_form_has_no_escape_codes_and_colour_form_has() -> None:
    state = fold(PARTIAL_RUN)
    assert "\x1b[" not in render_run(state)
    coloured = render_run(state, color=True)
    assert "\x1b[" in coloured
    assert "[a]" in coloured and "$2.125000" in coloured


def test_show_width_bounds_every_line() -> None:
    for width in (80, 100, 160):
        lines = render_run(fold(PARTIAL_RUN), width=width).splitlines()
        assert max(len(line) for line in lines) <= width
        assert sum(line.startswith(" [") for line in lines) == 3


def test_show_in_progress_run_has_costs_so_far() -> None:
    """Without run_finished the caller names the status; tasks going on show what they spent
    and, given the clock, how long they have taken so far."""
    prefix = PARTIAL_RUN[: PARTIAL_RUN.index(escalated(B, None))]
    text = render_run(fold(prefix), status="running", now=10.0)
    assert text.startswith("run r1: running\n")
    rows = _rows(text, "tasks")
    assert rows["[a]"][:5] == ["succeeded", "mini", "1", "3.0s", "100"]
    assert rows["[b]"] == ["pending", "base", "2", "8.0s", "400", "20", "40", "$1.250000", "-"]
    assert rows["[c]"] == ["pending", "-", "0", "-", "-", "-", "-", "-", "b"]
    assert "(none yet)" in text


def test_show_interrupted_run_marks_the_attempts_it_left_running() -> None:
    prefix = PARTIAL_RUN[: PARTIAL_RUN.index(finished(B, "ambiguous"))]
    rows = _rows(render_run(fold(prefix), status="interrupted", now=99.0), "tasks")
    assert rows["[b]"][:4] == ["interrupted", "mini", "1", "-"]


def test_show_finished_status_wins_over_the_callers() -> None:
    assert render_run(fold(PARTIAL_RUN), status="running").startswith("run r1: partial\n")


def test_show_lists_tasks_dependencies_first() -> None:
    """A plan still streaming may name a dependency after its dependent."""
    state = fold((START, planned(C, B), planned(B, A), planned(D), planned(A)))
    text = render_run(state, status="running")
    assert "tasks (4, plan incomplete):" in text
    assert list(_rows(text, "tasks")) == ["[d]", "[a]", "[b]", "[c]"]


def test_show_keeps_plan_order_where_dependencies_form_a_cycle() -> None:
    """Only a validated plan is acyclic; what streamed before is shown as it came."""
    state = fold((START, planned(B, A), planned(A, B)))
    assert list(_rows(render_run(state, status="running"), "tasks")) == ["[b]", "[a]"]


def test_show_resumed_run_with_work_waiting_for_review_and_unreviewed_work() -> None:
    from orchestrator.events import RunResumed

    events = (
        START,
        planned(A),
        planned(B),
        started(A, 1),
        finished(A),
        started(B, 1),
        finished(B),
        unreviewed(B),
        RunResumed(run_id=RUN, at=6.0, pid=1),
    )
    text = render_run(fold(events), status="running")
    assert "  resumes      1\n" in text
    rows = _rows(text, "tasks")
    assert (rows["[a]"][:3], rows["[b]"][:4]) == (
        ["reviewing", "mini", "1"],
        ["unreviewed", "mini", "1", "3.0s"],
    )
    assert "  b: unreviewed (work kept, not accepted): no reviewer\n" in text


def test_show_keeps_the_cost_of_a_task_a_replan_removed() -> None:
    from orchestrator.events import GraphReplanned

    replan = GraphReplanned(run_id=RUN, at=4.0, replaced=(A,), added=())
    state = fold((START, planned(A), planned(B), started(A, 1), called(A), replan))
    rows = _rows(render_run(state, status="running"), "tasks")
    assert rows["[a]"] == ["replaced", "-", "-", "-", "100", "10", "20", "$0.250000", "-"]


def test_show_unpriced_usage_is_unknown_never_zero() -> None:
    events = (
        START,
        planned(A),
        planned(B),
        started(A, 1),
        called(A, model="local", unpriced=True, cost=0.0),
        started(B, 1),
        called(B, model="m-mini", cost=0.25),
        called(None, role="planner", model="local", tier="frontier", unpriced=True, cost=0.0),
    )
    text = render_run(fold(events), status="running")
    assert "  cost         ≥ $0.250000 (unpriced: local)" in text
    tasks = _rows(text, "tasks")
    assert (tasks["[a]"][-2], tasks["[b]"][-2]) == ("unknown", "$0.250000")
    roles = _rows(text, "role")
    assert (roles["planner"][-1], roles["worker"][-2:]) == ("unknown", ["≥", "$0.250000"])


def test_show_fold_times_a_task_from_first_start_to_its_end() -> None:
    """TaskRecord.started_at is the first attempt's start; ended_at the terminal event, cleared
    when a resumed run takes the task up again."""
    from orchestrator.events import RunResumed

    state = fold(PARTIAL_RUN)
    assert (state.tasks[B].started_at, state.tasks[B].ended_at) == (2.0, 7.0)
    assert (state.tasks[C].started_at, state.tasks[C].ended_at) == (None, 5.0)
    prefix = (*PARTIAL_RUN[: PARTIAL_RUN.index(started(B, 1)) + 1], skipped(B, cause="stopped"))
    assert (fold(prefix).tasks[B].started_at, fold(prefix).tasks[B].ended_at) == (2.0, 5.0)
    again = fold((*prefix, RunResumed(run_id=RUN, at=20.0, pid=1)))
    assert (again.tasks[B].phase, again.tasks[B].started_at, again.tasks[B].ended_at) == (
        "planned",
        2.0,
        None,
    )


@pytest.mark.parametrize(
    ("usage", "text", "listed"),
    [
        pytest.param(Usage(cost_usd=0.0123456), "$0.012346", "$0.0123", id="priced"),
        pytest.param(Usage(), "$0.000000", "$0.0000", id="nothing_spent"),
        pytest.param(
            Usage(cost_usd=0.5, unpriced_models=("a", "b")),
            "≥ $0.500000 (unpriced: a, b)",
            "≥ $0.5000",
            id="partly_unpriced",
        ),
        pytest.param(
            Usage(tokens=TokenUsage(input_tokens=5), unpriced_models=("local",)),
            "unknown (unpriced: local)",
            "unknown",
            id="unpriced",
        ),
    ],
)
def test_show_cost_text(usage: Usage, text: str, listed: str) -> None:
    assert (cost_text(usage), listed_cost(usage)) == (text, listed)


def test_show_listed_cost_of_unreadable_usage_is_a_dash() -> None:
    assert listed_cost(None) == "-"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.04, "0.0s"), (4.26, "4.3s"), (59.9, "59.9s"), (185, "3m05s"), (3725, "1h02m")],
)
def test_show_duration_text(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text


# -- the real CLI -----------------------------------------------------------------------------
PRICED = "gpt-5.4-nano,gpt-5.4-mini,gpt-5.4"
"""Models of the default price table, so every call of the run is priced."""
UNPRICED = "mini-m,base-m,top-m"
ESCALATED = "t001"
"""Its first attempt (on the bottom tier) reports ambiguous: it escalates and succeeds at base."""


class _EscalatingModel(KillModel):
    def __call__(self, call: ApiCall) -> Reply:
        bottom = call.model in ("gpt-5.4-nano", "mini-m")
        if bottom and task_of(call) == ESCALATED:
            report: dict[str, object] = {"status": "ambiguous", "summary": "unclear"}
            report |= {"outputs": [], "confidence": 0.2}
            return Reply(text=json.dumps(report))
        return super().__call__(call)


def _cli_run(work: Path, logs: Path, models: str) -> str:
    """Run the goal to completion through the real CLI; returns the run id."""
    shape = KillShape.for_seed(1, n_tasks=4)
    shape.seed_workdir(work)
    root = run_root(work)
    before: set[str] = {p.name for p in root.iterdir()} if root.is_dir() else set()
    with serving(_EscalatingModel(shape)) as srv:
        args = (
            *("run", GOAL, "--workdir", str(work), "--base-url", srv.base_url),
            *("--backend", "compatible", "--api-style", "chat", "--models", models, "--json"),
        )
        done = run_cli(args, work, logs)
    assert done.returncode == 0, done.stderr[-2000:]
    (run_id,) = {p.name for p in run_root(work).iterdir() if p.is_dir()} - before
    return run_id


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """One workdir with a finished run on priced models and one on unpriced models."""
    tmp = tmp_path_factory.mktemp("cli")
    work = tmp / "work"
    priced = _cli_run(work, tmp / "priced", PRICED)
    unpriced = _cli_run(work, tmp / "unpriced", UNPRICED)
    return work, priced, unpriced


def _cli(work: Path, *args: str) -> CliRun:
    done = run_cli(args, work, work.parent / "_".join(args[:2]))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done


def _result(work: Path, run_id: str) -> dict[str, Any]:
    return cast("dict[str, Any]", json.loads((run_root(work) / run_id / "result.json").read_text()))


def _money(value: object) -> str:
    return f"${cast('float', value):.6f}"


def _figures(usage: Mapping[str, Any]) -> list[str]:
    """calls, in, cached, out and cost of a result.json usage, as `runs show` prints them."""
    tokens = cast("Mapping[str, int]", usage["tokens"])
    return [
        f"{tokens['requests']:,}",
        f"{tokens['input_tokens']:,}",
        f"{tokens['cached_input_tokens']:,}",
        f"{tokens['output_tokens']:,}",
        _money(usage["cost_usd"]),
    ]


@pytest.mark.timeout(60)
def test_show_cli_finished_run_matches_its_result(cli_runs: tuple[Path, str, str]) -> None:
    """Every task with its tier, attempts and cost, the totals by tier and by role, all equal to
    the run's result.json."""
    work, run_id, _ = cli_runs
    text = _cli(work, "runs", "show", run_id, "--workdir", str(work)).stdout
    result = _result(work, run_id)
    assert text.startswith(f"run {run_id}: completed\n")
    usage = result["usage"]
    assert f"  cost         {_money(usage['cost_usd'])}\n" in text
    tasks = _rows(text, "tasks")
    results = cast("Mapping[str, Mapping[str, Any]]", result["results"])
    assert sorted(tasks) == sorted(f"[{tid}]" for tid in results)
    assert len(results) == 4
    for tid, task in results.items():
        status, tier, attempts, _time, *_tokens, cost, _deps = tasks[f"[{tid}]"]
        assert (status, tier, attempts) == (task["kind"], task["tier"], str(task["attempts"]))
        assert cost == _money(task["usage"]["cost_usd"])
        assert _figures(task["usage"])[1:] == [*_tokens, cost]
    assert tasks[f"[{ESCALATED}]"][1:3] == ["base", "2"]
    tiers = _rows(text, "tier")
    expected = {t["tier"]: [t["model"], *_figures(t["usage"])] for t in result["usage_by_tier"]}
    assert tiers == {**expected, "total": _figures(usage)}
    assert set(expected) == {"mini", "base", "frontier"}
    roles = _rows(text, "role")
    by_role = cast("Mapping[str, Mapping[str, Any]]", result["usage_by_role"])
    assert roles == {**{r: _figures(u) for r, u in by_role.items()}, "total": _figures(usage)}
    assert set(by_role) >= {"planner", "worker", "reviewer"}
    shown = "\n".join(f"  {line}".rstrip() for line in result["answer"].splitlines())
    assert f"answer:\n{shown}" in text


@pytest.mark.timeout(60)
def test_show_cli_runs_list_shows_unknown_cost_as_unknown(cli_runs: tuple[Path, str, str]) -> None:
    work, priced, unpriced = cli_runs
    listed = _cli(work, "runs", "list", "--workdir", str(work)).stdout
    costs = {line.split()[0]: line.split()[2] for line in listed.splitlines()}
    cost = cast("float", _result(work, priced)["usage"]["cost_usd"])
    assert costs == {priced: f"${cost:.4f}", unpriced: "unknown"}
    assert cost > 0
    shown = _cli(work, "runs", "show", unpriced, "--workdir", str(work)).stdout
    assert "  cost         unknown (unpriced: base-m, mini-m, top-m)\n" in shown
    for section in ("tasks", "tier", "role"):
        assert {
            row[-2 if section == "tasks" else -1] for row in _rows(shown, section).values()
        } == {"unknown"}


def _journal_in_progress(work: Path, *, pid: int) -> RunId:
    """A run as its process left it: a journal without run_finished, indexed as running."""
    run_id = RunId("r-in-progress")
    now = time.time()
    store = RunStore(run_root(work))
    store.started(run_id, "count the words", now - 60, pid=pid)
    journal = Journal(store.run_dir(run_id) / JOURNAL_FILE)
    recorder = Recorder(journal, RunState())
    try:
        for event in _shifted(PARTIAL_RUN[: PARTIAL_RUN.index(finished(B, "ambiguous"))], now - 60):
            recorder.emit(dataclasses.replace(event, run_id=run_id))
        recorder.commit()
    finally:
        journal.close()
        store.close()
    return run_id


def _shifted(events: Sequence[Event], start: float) -> Iterator[Event]:
    for event in events:
        yield dataclasses.replace(event, at=start + event.at)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("pid", "status", "b_status"),
    [
        pytest.param(os.getpid(), "running", "running", id="running"),
        pytest.param(2**22 + 12345, "interrupted", "interrupted", id="interrupted"),
    ],
)
def test_show_cli_run_in_progress_shows_costs_so_far(
    tmp_path: Path, pid: int, status: str, b_status: str
) -> None:
    work = tmp_path / "work"
    run_id = _journal_in_progress(work, pid=pid)
    text = _cli(work, "runs", "show", run_id, "--workdir", str(work)).stdout
    assert text.startswith(f"run {run_id}: {status}\n")
    assert "  cost         $1.125000\n" in text
    tasks = _rows(text, "tasks")
    assert tasks["[a]"] == ["succeeded", "mini", "1", "3.0s", "100", "10", "20", "$0.250000", "-"]
    assert tasks["[b]"][:2] == [b_status, "mini"]
    assert tasks["[b]"][-2:] == ["$0.250000", "-"]
    assert (tasks["[b]"][3] == "-") == (status == "interrupted")
    listed = _cli(work, "runs", "list", "--workdir", str(work)).stdout.split()
    assert listed[:3] == [run_id, status, "$1.1250"]


# -- reading the text ---------------------------------------------------------------------------
_SECTIONS = {"tasks": "tasks (", "tier": "cost by tier:", "role": "cost by role:"}


def _rows(text: str, section: str) -> dict[str, list[str]]:
    """The rows of one table of `runs show`, by their first cell, header and rules left out."""
    lines = iter(text.splitlines())
    for line in lines:
        if line.startswith(_SECTIONS[section]):
            break
    next(lines)  # the header
    next(lines)  # its rule
    rows: dict[str, list[str]] = {}
    for line in lines:
        if set(line) <= {"-"}:
            continue  # the rule above the totals
        if not line.startswith(" ") or line.startswith("  "):
            break
        cells = line.split()
        rows[cells[0]] = cells[1:]
    return rows
