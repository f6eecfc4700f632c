"""The run report's cost tables: usage per task, per tier and per role, each totalling exactly
the run's ledger (what `RunResult.usage` and result.json hold)."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

from .events import Event, ModelCalled
from .fold import RunState
from .ledger import usage_of
from .models import TaskId, Usage
from .timeline import outcome_of

_USAGE_HEADS = ("requests", "tokens in", "cached", "tokens out", "reasoning", "cost (USD)")


def totals_table(state: RunState) -> str:
    """The run's totals, with exact figures in `data-*` attributes (`id="totals"`)."""
    total = state.ledger.total
    t = total.tokens
    attrs = {
        "cost-usd": repr(total.cost_usd),
        "tokens-in": t.input_tokens,
        "tokens-cached": t.cached_input_tokens,
        "tokens-out": t.output_tokens,
        "tokens-reasoning": t.reasoning_tokens,
        "requests": t.requests,
        "calls": state.ledger.calls,
        "unpriced": ",".join(total.unpriced_models),
    }
    data = " ".join(f'data-{k}="{_e(v)}"' for k, v in attrs.items())
    heads = "".join(f"<th>{h}</th>" for h in ("", "model calls", *_USAGE_HEADS))
    wasted = state.ledger.wasted
    rows = f"<tr><td>total</td><td>{state.ledger.calls}</td>{_cells(total)}</tr>"
    if wasted.tokens.requests or wasted.cost_usd:
        rows += f'<tr class="muted"><td>of which wasted</td><td></td>{_cells(wasted)}</tr>'
    return f'<table id="totals" {data}><thead><tr>{heads}</tr></thead><tbody>{rows}</tbody></table>'


def cost_section(events: Sequence[Event], state: RunState, rows: Sequence[TaskId]) -> str:
    """Three tables (per task, per tier, per role), each with the run's total as its footer."""
    ledger = state.ledger
    by_task = ledger.by_task
    task_ids = [*rows, *(t for t in by_task if t not in rows)]
    task_rows = [_task_row(tid, state) for tid in task_ids]
    task_rows.append(
        _row(
            ("(no task: planning, review, answer)", "", "", ""),
            _unattributed(events),
            css="muted",
        )
    )
    tier_rows = [
        _row((tier or "?", model), u) for (tier, model), u in sorted(ledger.by_tier.items())
    ]
    role_rows = [_row((role,), u) for role, u in sorted(ledger.by_role.items())]
    unpriced = ledger.total.unpriced_models
    note = (
        f'<p class="muted">Unpriced models (tokens counted, cost unknown): '
        f"{_e(', '.join(unpriced))}</p>"
        if unpriced
        else ""
    )
    return "\n".join(
        (
            "<h2>Cost</h2>",
            note,
            _table(
                "cost-by-task", ("task", "outcome", "tier", "attempts"), task_rows, ledger.total
            ),
            _table("cost-by-tier", ("tier", "model"), tier_rows, ledger.total),
            _table("cost-by-role", ("role",), role_rows, ledger.total),
        )
    )


def _task_row(tid: TaskId, state: RunState) -> str:
    rec = state.tasks.get(tid)
    usage = state.ledger.by_task.get(tid) or Usage()
    if rec is None:
        return _row((tid, "replaced", "", ""), usage, tid=tid)
    return _row((tid, outcome_of(rec), rec.tier, str(rec.attempts)), usage, tid=tid)


def _unattributed(events: Iterable[Event]) -> Usage:
    total = Usage()
    for event in events:
        if isinstance(event, ModelCalled) and event.task_id is None:
            total += usage_of(event)
    return total


def _table(table_id: str, heads: Sequence[str], rows: Sequence[str], total: Usage) -> str:
    head = "".join(f"<th>{h}</th>" for h in (*heads, *_USAGE_HEADS))
    pad = "<td></td>" * (len(heads) - 1)
    foot = (
        f'<tr class="total" data-cost-usd="{total.cost_usd!r}" '
        f'data-requests="{total.tokens.requests}"><td>total</td>{pad}{_cells(total)}</tr>'
    )
    return (
        f'<table id="{table_id}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody><tfoot>{foot}</tfoot></table>"
    )


def _row(labels: Sequence[str], usage: Usage, *, tid: TaskId | None = None, css: str = "") -> str:
    attrs = f' data-task-id="{_e(tid)}"' if tid is not None else ""
    attrs += f' class="{css}"' if css else ""
    attrs += f' data-cost-usd="{usage.cost_usd!r}" data-requests="{usage.tokens.requests}"'
    cells = "".join(f"<td>{_e(label)}</td>" for label in labels)
    return f"<tr{attrs}>{cells}{_cells(usage)}</tr>"


def _cells(usage: Usage) -> str:
    t = usage.tokens
    cost = f"${usage.cost_usd:,.6f}" + (" + unpriced" if usage.unpriced_models else "")
    values = (
        t.requests,
        t.input_tokens,
        t.cached_input_tokens,
        t.output_tokens,
        t.reasoning_tokens,
    )
    return "".join(f"<td>{v:,}</td>" for v in values) + f"<td>{_e(cost)}</td>"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)
