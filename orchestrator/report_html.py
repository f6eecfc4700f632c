"""The run report: one self-contained HTML file (inline CSS and SVG; no script, font or network)
with the DAG, a Gantt timeline of attempts with the run's critical path, and the cost tables.

Every string from the run (goal, task ids, instructions, reasons) is model or user text: it is
escaped wherever it lands, and the page's Content-Security-Policy forbids scripts besides.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from .events import Event
from .fold import RunState, TaskRecord, fold
from .journal import read_events
from .models import TaskId
from .report_costs import cost_section, totals_table
from .timeline import (
    AttemptSpan,
    Layout,
    Mark,
    Timeline,
    build_timeline,
    critical_path,
    dependencies,
    layered_layout,
    outcome_of,
)

REPORT_FILE = "report.html"
_XScale = Callable[[float], float]
"""The Gantt's time → x mapping."""

_TIER_COLOURS = ("#7cc4fa", "#3f88d8", "#7b5cd6", "#c05ac8", "#e07b39", "#3aa39a")
_OUTCOME_COLOURS = {
    "succeeded": "#2e9e5b",
    "failed": "#d64545",
    "skipped": "#a3a8ad",
    "unreviewed": "#e0a030",
    "unfinished": "#6c9bd2",
    "replaced": "#c9ccd0",
}
_MARK_COLOURS = {
    "accept": "#2e9e5b",
    "retry": "#e0a030",
    "escalate": "#7b5cd6",
    "replan": "#3f88d8",
    "no verdict": "#d64545",
}
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1d2228;
background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.goal{white-space:pre-wrap;background:#f4f6f8;border-radius:6px;padding:8px 12px;margin:8px 0}
.status{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-weight:600}
.facts{display:flex;flex-wrap:wrap;gap:4px 24px;margin:8px 0;color:#444}
table{border-collapse:collapse;margin:6px 0 12px}
th,td{padding:3px 10px;border-bottom:1px solid #e3e6ea;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
tfoot td,#totals td{font-weight:600}
svg text{font:12px system-ui,sans-serif;fill:#1d2228}
.node rect{stroke:#4b5560;stroke-width:1}.node.critical rect{stroke:#111;stroke-width:3}
.node text.sub{fill:#fff;font-size:11px}.node text.id{fill:#fff;font-weight:600}
.edge{fill:none;stroke:#9aa3ad;stroke-width:1.4}.edge.critical{stroke:#111;stroke-width:2.6}
.row:hover .band{fill:#eef3fa}.bar{stroke:#33404d;stroke-width:.6}
.bar.critical{stroke:#111;stroke-width:2.2}.bar.failed-attempt{opacity:.55;stroke-dasharray:3 2}
.row.critical text.label{font-weight:700}.axis line{stroke:#e3e6ea}.axis text{fill:#6b7580}
.legend{display:flex;flex-wrap:wrap;gap:4px 16px;font-size:12px;color:#444}
.sw{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:-2px;
margin-right:4px;border:1px solid #4b5560}
.answer{white-space:pre-wrap}.muted{color:#6b7580}
"""
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def render_report(events: Sequence[Event], state: RunState) -> str:
    """The whole report page for the run whose journal is `events` and fold is `state`."""
    timeline = build_timeline(events, state)
    deps = dependencies(state)
    critical = critical_path(deps, timeline.ends)
    tiers = _tier_colours(state, timeline)
    body = "\n".join(
        (
            _header(state, timeline, critical),
            "<h2>Task graph</h2>",
            _dag_svg(state, deps, layered_layout(deps), timeline, critical),
            _outcome_legend(),
            "<h2>Timeline</h2>",
            _gantt_svg(state, timeline, critical, tiers),
            _tier_legend(tiers),
            cost_section(events, state, timeline.rows),
            _answer(state),
        )
    )
    title = _e(f"Run {state.run_id} report")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        f"<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Render the report of the run in `run_dir` to `out` (default `<run_dir>/report.html`)."""
    events = read_events(run_dir)
    path = out if out is not None else run_dir / REPORT_FILE
    path.write_text(render_report(events, fold(events)), encoding="utf-8")
    return path


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _tier_colours(state: RunState, timeline: Timeline) -> dict[str, str]:
    names = list(state.tiers)
    names += [a.tier for a in timeline.attempts if a.tier not in names]
    names = list(dict.fromkeys(names))
    return {t: _TIER_COLOURS[i % len(_TIER_COLOURS)] for i, t in enumerate(names)}


def _seconds(s: float) -> str:
    if s >= 120:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{s:.1f}s" if s >= 10 else f"{s:.2f}s"


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


# -- header ----------------------------------------------------------------------------------
def _header(state: RunState, timeline: Timeline, critical: Sequence[TaskId]) -> str:
    status = state.status or "in progress / interrupted"
    colour = {"completed": "#2e9e5b", "partial": "#e0a030"}.get(status, "#d64545")
    counts: dict[str, int] = {}
    for rec in state.tasks.values():
        counts[outcome_of(rec)] = counts.get(outcome_of(rec), 0) + 1
    started = datetime.fromtimestamp(state.started_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    facts = [
        f"started {started}",
        f"duration {_seconds(timeline.span_s)}",
        ", ".join(f"{n} {k}" for k, n in counts.items()) or "no tasks",
        f"escalations {state.escalations}",
        f"replans {state.replans}",
        f"transport retries {state.ledger.retries}",
    ]
    if state.resumes:
        facts.append(f"resumed {state.resumes}×")
    if state.stop_reason:
        facts.append(f"stopped: {state.stop_reason}")
    path = " → ".join(critical) if critical else "none (nothing ran)"
    end = f" (ended at {_seconds(timeline.ends[critical[-1]])})" if critical else ""
    return (
        f"<h1>Run <code>{_e(state.run_id)}</code> "
        f'<span class="status" style="background:{colour}">{_e(status)}</span></h1>\n'
        f'<div class="goal" id="goal">{_e(state.goal)}</div>\n'
        f'<div class="facts">{"".join(f"<span>{_e(f)}</span>" for f in facts)}</div>\n'
        f'<p id="critical-path">Critical path: <strong>{_e(path)}</strong>{_e(end)}</p>\n'
        f"{totals_table(state)}"
    )


def _answer(state: RunState) -> str:
    text = state.answer if state.answer else "(no answer written)"
    return f'<h2>Answer</h2>\n<div class="answer" id="answer">{_e(text)}</div>'


# -- DAG -------------------------------------------------------------------------------------
_NODE_W, _NODE_H, _COL_GAP, _ROW_GAP, _PAD = 176, 46, 64, 16, 12


def _dag_svg(
    state: RunState,
    deps: Mapping[TaskId, tuple[TaskId, ...]],
    layout: Layout,
    timeline: Timeline,
    critical: Sequence[TaskId],
) -> str:
    def corner(tid: TaskId) -> tuple[float, float]:
        x = _PAD + layout.column[tid] * (_NODE_W + _COL_GAP)
        return x, _PAD + layout.slot[tid] * (_NODE_H + _ROW_GAP)

    on_path = set(itertools.pairwise(critical))
    parts: list[str] = []
    for tid, ds in deps.items():
        x2, y2 = corner(tid)
        for dep in ds:
            x1, y1 = corner(dep)
            x1, y1, y2c = x1 + _NODE_W, y1 + _NODE_H / 2, y2 + _NODE_H / 2
            mid = (x1 + x2) / 2
            crit = (dep, tid) in on_path
            parts.append(
                f'<path class="edge{" critical" if crit else ""}" data-from="{_e(dep)}" '
                f'data-to="{_e(tid)}" d="M{x1:.1f},{y1:.1f} C{mid:.1f},{y1:.1f} '
                f'{mid:.1f},{y2c:.1f} {x2 - 2:.1f},{y2c:.1f}" '
                f'marker-end="url(#{"arrow-crit" if crit else "arrow"})"/>'
            )
    for tid, rec in state.tasks.items():
        parts.append(_node(tid, rec, corner(tid), timeline, tid in critical))
    width = _PAD * 2 + max(layout.columns, 1) * (_NODE_W + _COL_GAP) - _COL_GAP
    height = _PAD * 2 + max(layout.slots, 1) * (_NODE_H + _ROW_GAP) - _ROW_GAP
    defs = "".join(
        f'<marker id="{mid}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" '
        f'markerHeight="8" markerUnits="userSpaceOnUse" orient="auto">'
        f'<path d="M0,0 L10,5 L0,10 z" fill="{fill}"/></marker>'
        for mid, fill in (("arrow", "#9aa3ad"), ("arrow-crit", "#111"))
    )
    return (
        f'<svg id="dag" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="task graph"><defs>{defs}</defs>\n' + "\n".join(parts) + "\n</svg>"
    )


def _node(
    tid: TaskId, rec: TaskRecord, at: tuple[float, float], timeline: Timeline, crit: bool
) -> str:
    x, y = at
    outcome = outcome_of(rec)
    tiers = list(dict.fromkeys(a.tier for a in timeline.attempts if a.task_id == tid))
    runs = sum(1 for a in timeline.attempts if a.task_id == tid)
    tier = "→".join(tiers) if tiers else rec.tier
    sub = f"{tier} · {runs} attempt{'s' if runs != 1 else ''}" if runs else f"{tier} · not run"
    why = _why(rec)
    tip = f"{tid}: {outcome}\n{sub}" + (f"\n{why}" if why else "")
    tip += f"\n\n{_clip(rec.spec.instruction, 400)}"
    cls = f"node outcome-{outcome}" + (" critical" if crit else "")
    return (
        f'<g class="{cls}" data-task-id="{_e(tid)}" data-outcome="{outcome}" '
        f'data-tier="{_e(tier)}" data-critical="{str(crit).lower()}">'
        f"<title>{_e(tip)}</title>"
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{_NODE_W}" height="{_NODE_H}" rx="6" '
        f'fill="{_OUTCOME_COLOURS[outcome]}"/>'
        f'<text class="id" x="{x + 8:.1f}" y="{y + 19:.1f}">{_e(_clip(tid, 24))}</text>'
        f'<text class="sub" x="{x + 8:.1f}" y="{y + 36:.1f}">{_e(_clip(sub, 28))}</text></g>'
    )


def _why(rec: TaskRecord) -> str:
    result = rec.result
    if result is None or result.kind == "succeeded":
        return ""
    if result.kind == "failed":
        return f"{result.error.type}: {result.error.message}"
    return result.reason


def _outcome_legend() -> str:
    items = "".join(
        f'<span><span class="sw" style="background:{c}"></span>{k}</span>'
        for k, c in _OUTCOME_COLOURS.items()
    )
    return (
        f'<div class="legend">{items}<span><span class="sw" style="border:3px solid #111">'
        "</span>critical path</span></div>"
    )


# -- Gantt -----------------------------------------------------------------------------------
_LABEL_W, _PLOT_W, _ROW_H, _BAR_H, _AXIS_H = 180, 960, 32, 12, 26


def _gantt_svg(
    state: RunState, timeline: Timeline, critical: Sequence[TaskId], tiers: Mapping[str, str]
) -> str:
    span = timeline.span_s if timeline.span_s > 0 else 1.0

    def x(t: float) -> float:
        return _LABEL_W + max(0.0, min(t, span)) / span * _PLOT_W

    height = _AXIS_H + len(timeline.rows) * _ROW_H + 6
    parts = [_axis(span, height, x)]
    for i, tid in enumerate(timeline.rows):
        y = _AXIS_H + i * _ROW_H
        crit = tid in critical
        items = [
            f'<rect class="band" x="0" y="{y}" width="{_LABEL_W + _PLOT_W}" height="{_ROW_H}" '
            f'fill="{"#f7f8fa" if i % 2 else "#fff"}"/>',
            f'<text class="label" x="6" y="{y + _ROW_H / 2 + 4:.0f}">{_e(_clip(tid, 24))}</text>',
        ]
        items += [_bar(a, y, x, tiers, crit) for a in timeline.attempts if a.task_id == tid]
        items += [_mark(m, y, x) for m in timeline.marks if m.task_id == tid]
        outcome = outcome_of(state.tasks.get(tid))
        parts.append(
            f'<g class="row{" critical" if crit else ""}" data-task-id="{_e(tid)}" '
            f'data-outcome="{outcome}" data-critical="{str(crit).lower()}">'
            + "".join(items)
            + "</g>"
        )
    width = _LABEL_W + _PLOT_W + 12
    return (
        f'<svg id="gantt" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="timeline of attempts">\n' + "\n".join(parts) + "\n</svg>"
    )


def _axis(span: float, height: int, x: _XScale) -> str:
    raw = span / 8
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    ticks: list[str] = []
    n = 0
    while n * step <= span + 1e-9:
        t = n * step
        ticks.append(
            f'<line x1="{x(t):.1f}" y1="{_AXIS_H - 4}" x2="{x(t):.1f}" y2="{height}"/>'
            f'<text x="{x(t) + 3:.1f}" y="{_AXIS_H - 8}">{_seconds(t)}</text>'
        )
        n += 1
    return f'<g class="axis">{"".join(ticks)}</g>'


def _bar(a: AttemptSpan, y: int, x: _XScale, tiers: Mapping[str, str], crit: bool) -> str:
    x0, x1 = x(a.start), x(a.end)
    failed = a.outcome != "done"
    cls = "bar" + (" critical" if crit else "") + (" failed-attempt" if failed else "")
    tip = (
        f"{a.task_id} attempt {a.attempt} at {a.tier} ({a.model}): {a.outcome}, "
        f"{_seconds(a.end - a.start)}, {a.turns} turn(s), {_seconds(a.start)}–{_seconds(a.end)}"
    )
    if a.detail:
        tip += f"\n{_clip(a.detail, 400)}"
    return (
        f'<rect class="{cls}" data-task-id="{_e(a.task_id)}" data-attempt="{a.attempt}" '
        f'data-tier="{_e(a.tier)}" data-outcome="{_e(a.outcome)}" '
        f'data-critical="{str(crit).lower()}" x="{x0:.1f}" y="{y + (_ROW_H - _BAR_H) / 2:.1f}" '
        f'width="{max(x1 - x0, 2.0):.1f}" height="{_BAR_H}" rx="2" '
        f'fill="{tiers.get(a.tier, "#999")}"><title>{_e(tip)}</title></rect>'
    )


def _mark(m: Mark, y: int, x: _XScale) -> str:
    """A verdict sits above the bars, a retry or an escalation below, on a line at its time."""
    cx, top, low = x(m.at), y + 1.0, y + _ROW_H - 10.0
    if m.kind == "review":
        colour = _MARK_COLOURS.get(m.label, "#555")
        shape = f'<path d="M{cx:.1f},{top:.1f} l4.5,4.5 l-4.5,4.5 l-4.5,-4.5 z" fill="{colour}"/>'
    elif m.kind == "retry":
        shape = f'<circle cx="{cx:.1f}" cy="{low + 5:.1f}" r="4.5" fill="#e0a030"/>'
    else:
        colour = "#d64545" if m.label.endswith("gave up") else "#7b5cd6"
        shape = f'<path d="M{cx:.1f},{low:.1f} l5,9 l-10,0 z" fill="{colour}"/>'
    tip = f"{m.kind}: {m.label} at {_seconds(m.at)}" + (
        f"\n{_clip(m.reason, 600)}" if m.reason else ""
    )
    return (
        f'<g class="mark mark-{m.kind}" data-task-id="{_e(m.task_id)}" data-label="{_e(m.label)}">'
        f'<title>{_e(tip)}</title><line x1="{cx:.1f}" y1="{top:.1f}" x2="{cx:.1f}" '
        f'y2="{y + _ROW_H - 1:.1f}" stroke="#33404d" stroke-width="1"/>{shape}</g>'
    )


def _tier_legend(tiers: Mapping[str, str]) -> str:
    items: Iterable[str] = (
        f'<span><span class="sw" style="background:{c}"></span>{_e(t)}</span>'
        for t, c in tiers.items()
    )
    marks = (
        '<span>◆ review verdict</span><span style="color:#e0a030">● retry</span>'
        '<span style="color:#7b5cd6">▲ escalation</span><span>dashed: attempt not done</span>'
        "<span>bold outline: critical path</span>"
    )
    return f'<div class="legend">{"".join(items)}{marks}</div>'
