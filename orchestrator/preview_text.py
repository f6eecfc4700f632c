"""A plan's preview as text: the DAG as a table with each task's estimate, then the totals."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .preview import PlanEstimate, PlanPreview


def render_preview(preview: PlanPreview) -> str:
    """The preview as text: a line per task with its instruction under it, then the totals."""
    estimate = preview.estimate
    by_id = {e.task_id: e for e in estimate.tasks}
    header = ("task", "deps", "tier", "tools", "estimate (low to high)", "expected", "basis")
    rows: list[tuple[str, ...]] = [header]
    for task in preview.plan.tasks:
        e = by_id[task.id]
        basis = (
            f"history ({e.samples} run{'s' if e.samples != 1 else ''})" if e.samples else e.basis
        )
        rows.append(
            (
                task.id,
                ", ".join(task.deps) or "-",
                e.tier,
                ", ".join(task.tools) or "-",
                f"{usd(e.low_usd)} to {usd(e.high_usd)}",
                usd(e.expected_usd),
                basis,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [f"plan: {len(preview.plan.tasks)} task(s) for: {_short(preview.goal, 160)}"]
    if preview.workdir:
        lines.append(f"workdir: {preview.workdir}")
    for index, row in enumerate(rows):
        lines.append(
            "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        )
        if index:
            lines.append(f"      {_short(preview.plan.tasks[index - 1].instruction, 100)}")
    lines.extend(_totals(estimate))
    return "\n".join(lines)


def _totals(estimate: PlanEstimate) -> list[str]:
    o = estimate.overhead
    lines = [
        f"planning (spent): {usd(estimate.planning_usd)}",
        f"review + synthesis: {usd(o.low_usd)} to {usd(o.high_usd)} "
        f"(expected {usd(o.expected_usd)}, {estimate.overhead_basis})",
        f"total: {usd(estimate.low_usd)} to {usd(estimate.high_usd)} "
        f"(expected {usd(estimate.expected_usd)})",
    ]
    if estimate.unpriced_models:
        lines.append(f"unpriced, counted as $0: {', '.join(estimate.unpriced_models)}")
    return lines


def usd(amount: float) -> str:
    """A dollar amount with the precision small per-task costs need."""
    return f"${amount:,.2f}" if amount >= 100 else f"${amount:.4f}"


def _short(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
