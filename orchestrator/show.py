"""`runs show`: a run's state as text. Totals, then the plan as a table (per task: status, tier,
attempts, time, tokens and cost), then cost by tier and by role, then the answer.

Pure: it reads a folded `RunState`, of a finished run or of one still going (so costs show as they
accrue), and returns text; rich lays out the tables, in colour for a terminal, plain otherwise.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from typing import Literal

from rich import box
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from .fold import RunState, TaskRecord
from .models import Failed, Skipped, TaskId, Unreviewed, Usage

PLAIN_WIDTH = 120
"""The width of the plain form (not a terminal): fixed, so the text does not depend on where
it is printed."""
_PLAIN_BOX = box.Box("    \n    \n -- \n    \n -- \n    \n    \n    \n", ascii=True)
"""Columns apart, a dashed rule under the header and above totals: no box-drawing characters."""
_TERMINAL_BOX = box.Box("    \n    \n ── \n    \n ── \n    \n    \n    \n")
_ROLES = ("planner", "worker", "reviewer", "synthesizer")
_STATUS_STYLES: Mapping[str, str] = {
    "succeeded": "green",
    "failed": "bold red",
    "skipped": "dim",
    "unreviewed": "magenta",
    "running": "yellow",
    "reviewing": "cyan",
    "merging": "cyan",
    "interrupted": "yellow",
    "replaced": "dim",
}
_NUMERIC: Literal["right"] = "right"


def render_run(
    state: RunState,
    *,
    status: str | None = None,
    width: int = PLAIN_WIDTH,
    color: bool = False,
    now: float | None = None,
) -> str:
    """The run as text, `width` columns wide.

    Args:
        status: what to call the run when its journal has no `run_finished` (running or
            interrupted); a finished run's own status wins.
        color: ANSI colours and styles, for a terminal; without, the text is plain and stable.
        now: the clock of the run's events (seconds since the epoch), for how long the tasks
            of a running run have taken so far; None (or a run not running) leaves it out.
    """
    out = io.StringIO()
    console = Console(
        file=out,
        width=width,
        color_system="standard" if color else None,
        force_terminal=color,
        force_jupyter=False,
        force_interactive=False,
        no_color=None if color else True,  # a terminal: NO_COLOR in the environment still wins
        markup=False,
        emoji=False,
        highlight=False,
        legacy_windows=False,
        soft_wrap=False,
    )
    shown = state.status or status or "running"
    for part in _parts(state, shown, now=now, box_style=_TERMINAL_BOX if color else _PLAIN_BOX):
        console.print(part)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())


def cost_text(usage: Usage, *, places: int = 6, detail: bool = True) -> str:
    """`$x`; `≥ $x (unpriced: model)` when some of the models used have no price; `unknown` when
    none of the usage was priced. `detail=False` leaves the model names out."""
    amount = f"${usage.cost_usd:.{places}f}"
    if not usage.unpriced_models:
        return amount
    text = f"≥ {amount}" if usage.cost_usd > 0 else "unknown"
    return text + (f" (unpriced: {', '.join(usage.unpriced_models)})" if detail else "")


def listed_cost(usage: Usage | None) -> str:
    """The cost column of `runs list`: `-` when the run's usage cannot be read."""
    return "-" if usage is None else cost_text(usage, places=4, detail=False)


def _parts(
    state: RunState, status: str, *, now: float | None, box_style: box.Box
) -> Iterator[RenderableType]:
    yield Text(f"run {state.run_id}: {status}", style="bold")
    yield _header(state)
    yield Text(f"tasks ({len(state.tasks)}{'' if state.plan_complete else ', plan incomplete'}):")
    yield _task_table(state, status, now=now if status == "running" else None, box_style=box_style)
    notes = list(_notes(state))
    if notes:
        yield Text("\n".join(notes))
    yield Text("cost by tier:")
    yield _usage_table("tier", _tier_rows(state), state.ledger.total, box_style=box_style)
    yield Text("cost by role:")
    yield _usage_table("role", _role_rows(state), state.ledger.total, box_style=box_style)
    yield Text("answer:")
    answer = (state.answer or "").strip()
    yield Text("  " + (answer.replace("\n", "\n  ") if answer else "(none yet)"))


def _header(state: RunState) -> Table:
    ledger = state.ledger
    tokens, wasted = ledger.total.tokens, ledger.wasted
    grid = Table.grid(padding=(0, 2), pad_edge=True)
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("goal", state.goal or "-")
    if state.stop_reason:
        detail = f" — {state.stop_detail}" if state.stop_detail else ""
        grid.add_row("stopped", f"{state.stop_reason}{detail}")
    grid.add_row("cost", cost_text(ledger.total))
    grid.add_row(
        "tokens",
        f"{tokens.input_tokens:,} in ({tokens.cached_input_tokens:,} cached), "
        f"{tokens.output_tokens:,} out ({tokens.reasoning_tokens:,} reasoning)"
        + (f", {tokens.estimated_tokens:,} estimated" if tokens.estimated_tokens else ""),
    )
    grid.add_row("calls", f"{ledger.calls} ({ledger.retries} transport retries)")
    grid.add_row(
        "wasted",
        f"{wasted.tokens.requests} replies, {cost_text(wasted)} (invalid, cut or abandoned)",
    )
    grid.add_row("escalations", f"{state.escalations} (replans {state.replans})")
    if state.resumes:
        grid.add_row("resumes", str(state.resumes))
    return grid


def _task_table(state: RunState, status: str, *, now: float | None, box_style: box.Box) -> Table:
    table = Table(box=box_style, show_edge=False, pad_edge=True, expand=False)
    table.add_column("task", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("tier", no_wrap=True)
    table.add_column("attempts", justify=_NUMERIC, no_wrap=True)
    table.add_column("time", justify=_NUMERIC, no_wrap=True)
    for name in ("in", "cached", "out"):
        table.add_column(name, justify=_NUMERIC, no_wrap=True)
    table.add_column("cost", justify=_NUMERIC, no_wrap=True)
    table.add_column("deps", overflow="fold")
    by_task = state.ledger.by_task
    for tid in _topological(state.tasks):
        rec = state.tasks[tid]
        shown = _status(rec, status)
        table.add_row(
            f"[{tid}]",
            Text(shown, style=_STATUS_STYLES.get(shown, "")),
            _tier(rec),
            str(rec.attempts),
            _elapsed(rec, now),
            *_usage_cells(by_task.get(tid)),
            ",".join(d for d in rec.spec.deps) or "-",
        )
    for tid, usage in by_task.items():  # replaced by a replan: their cost stays in the run
        if tid not in state.tasks:
            replaced = Text("replaced", style=_STATUS_STYLES["replaced"])
            table.add_row(f"[{tid}]", replaced, "-", "-", "-", *_usage_cells(usage), "-")
    return table


def _usage_cells(usage: Usage | None) -> tuple[str, str, str, str]:
    """in, cached, out and cost; dashes for a task that made no model call."""
    if usage is None or not _has_usage(usage):
        return ("-", "-", "-", "-")
    t = usage.tokens
    cost = cost_text(usage, detail=False)
    return (f"{t.input_tokens:,}", f"{t.cached_input_tokens:,}", f"{t.output_tokens:,}", cost)


def _has_usage(usage: Usage) -> bool:
    t = usage.tokens
    return bool(t.requests or t.total_tokens or usage.cost_usd or usage.unpriced_models)


def _status(rec: TaskRecord, run_status: str) -> str:
    """The task's phase, as a word; what an interrupted run left running shows as interrupted."""
    match rec.phase:
        case "planned":
            return "pending"
        case "running":
            return "interrupted" if run_status == "interrupted" else "running"
        case "finished":
            return "reviewing"
        case phase:
            return phase


def _tier(rec: TaskRecord) -> str:
    """The tier of its last attempt (the accepted or failed one when it ended); `-` if none ran."""
    result = rec.result
    if isinstance(result, Skipped) or result is None:
        return rec.tier if rec.attempts else "-"
    return result.tier


def _elapsed(rec: TaskRecord, now: float | None) -> str:
    """From its first attempt's start to its end (or `now` while it goes on)."""
    end = rec.ended_at if rec.ended_at is not None else now
    if rec.started_at is None or end is None:
        return "-"
    return duration_text(max(0.0, end - rec.started_at))


def duration_text(seconds: float) -> str:
    """`4.2s`, `3m05s` or `1h02m`."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _topological(tasks: Mapping[TaskId, TaskRecord]) -> list[TaskId]:
    """The tasks dependencies first, otherwise in plan order (a stream cut mid-plan or a
    dependency on a task not known yet keeps its place)."""
    order: list[TaskId] = []
    placed: set[TaskId] = set()
    pending = list(tasks)
    while pending:
        rest: list[TaskId] = []
        for tid in pending:
            deps = tasks[tid].spec.deps
            if all(d in placed or d not in tasks for d in deps):
                order.append(tid)
                placed.add(tid)
            else:
                rest.append(tid)
        if len(rest) == len(pending):  # a cycle (never validated): as they are
            order.extend(rest)
            break
        pending = rest
    return order


def _notes(state: RunState) -> Iterator[str]:
    """Why each task that did not succeed ended as it did."""
    for tid, rec in state.tasks.items():
        match rec.result:
            case Failed(error=error):
                yield f"  {tid}: failed: {error.type}: {error.message}"
            case Skipped(reason=reason):
                yield f"  {tid}: skipped: {reason}"
            case Unreviewed(reason=reason):
                yield f"  {tid}: unreviewed (work kept, not accepted): {reason}"
            case _:
                pass


def _tier_rows(state: RunState) -> list[tuple[tuple[str, ...], Usage]]:
    names = dict(zip(state.ladder, state.tiers, strict=False))
    rank = {name: i for i, name in enumerate(state.tiers)}
    rows = [
        ((tier or names.get(model, "") or "-", model), usage)
        for (tier, model), usage in state.ledger.by_tier.items()
    ]
    return sorted(rows, key=lambda row: (rank.get(row[0][0], len(rank)), row[0]))


def _role_rows(state: RunState) -> list[tuple[tuple[str, ...], Usage]]:
    rank = {role: i for i, role in enumerate(_ROLES)}
    roles = sorted(state.ledger.by_role, key=lambda r: (rank.get(r, len(rank)), r))
    return [((role,), state.ledger.by_role[role]) for role in roles]


def _usage_table(
    kind: Literal["tier", "role"],
    rows: list[tuple[tuple[str, ...], Usage]],
    total: Usage,
    *,
    box_style: box.Box,
) -> Table:
    table = Table(box=box_style, show_edge=False, pad_edge=True, expand=False)
    labels = ("tier", "model") if kind == "tier" else ("role",)
    for label in labels:
        table.add_column(label, no_wrap=True)
    for name in ("requests", "in", "cached", "out"):
        table.add_column(name, justify=_NUMERIC, no_wrap=True)
    table.add_column("cost", justify=_NUMERIC, no_wrap=True)
    for i, (key, usage) in enumerate([*rows, (("total",) + ("",) * (len(labels) - 1), total)]):
        t = usage.tokens
        table.add_row(
            *key,
            f"{t.requests:,}",
            f"{t.input_tokens:,}",
            f"{t.cached_input_tokens:,}",
            f"{t.output_tokens:,}",
            cost_text(usage, detail=False),  # the header names the unpriced models
            end_section=i == len(rows) - 1,
        )
    return table
