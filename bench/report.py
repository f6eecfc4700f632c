"""The targets of issue 5, judged on the medians, and the markdown the bench prints and writes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Row = Mapping[str, Any]
"""One workload's results as `run.py` stores them in the JSON (a JSON edge, hence `Any`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """One target of issue 5 and whether this run met it."""

    name: str
    met: bool | None
    """None: not measured in this run."""
    detail: str

    def line(self) -> str:
        mark = "n/a" if self.met is None else ("met" if self.met else "NOT MET")
        return f"- **{mark}**: {self.name}. {self.detail}"


def _worst(rows: Sequence[Row], key: str, *, runner: str = "ours") -> tuple[float, str]:
    values = [(row[runner][key], row["name"]) for row in rows if row[runner] and key in row[runner]]
    return max(values)


def targets(rows: Sequence[Row], extras: Mapping[str, Any]) -> list[Target]:
    """Each target with the worst workload's value; ratios are judged on measured durations."""
    cp, cp_at = _worst(rows, "cp_ratio_measured")
    cp_planned, cp_planned_at = _worst(rows, "cp_ratio")
    ls, ls_at = _worst(rows, "ls_ratio_measured")
    ls_planned, ls_planned_at = _worst(rows, "ls_ratio")
    over, over_at = _worst(rows, "overhead_us")
    over_cpu, over_cpu_at = _worst(rows, "overhead_cpu_us")
    p99, p99_at = _worst(rows, "ready_p99_ms")
    found = [
        Target(name="makespan <= 1.03 x critical path, uncapped, every workload", met=cp <= 1.03,
               detail=f"Worst {cp:.3f} ({cp_at}) against the durations the tasks really took; "
               f"against planned latencies worst {cp_planned:.3f} ({cp_planned_at}), which "
               "includes the event loop's timer slack."),
        Target(name="makespan <= 1.05 x list scheduling at cap 16, every workload",
               met=ls <= 1.05,
               detail=f"Worst {ls:.3f} ({ls_at}) against measured durations; against planned "
               f"latencies worst {ls_planned:.3f} ({ls_planned_at})."),
        Target(name="per-task overhead <= 25 us", met=over <= 25.0,
               detail=f"Worst wall {over:.1f} us/task ({over_at}); worst CPU "
               f"{over_cpu:.1f} us/task ({over_cpu_at})."),
        _versus_langgraph(rows),
        Target(name="ready -> started p99 <= 2 ms", met=p99 <= 2.0,
               detail=f"Worst {p99:.2f} ms ({p99_at}), outside each workload's largest burst."),
        _fan_out_burst(rows),
        _rss(extras),
        _streaming(extras),
    ]
    return found


def _versus_langgraph(rows: Sequence[Row]) -> Target:
    name = "per-task overhead at least 5 x below LangGraph's"
    pairs = [
        (row["langgraph"]["overhead_us"] / row["ours"]["overhead_us"], row["name"])
        for row in rows
        if row["langgraph"] and "overhead_us" in row["langgraph"]
    ]
    if not pairs:
        return Target(name=name, met=None, detail="LangGraph was not run.")
    factor, where = min(pairs)
    return Target(name=name, met=factor >= 5.0 and len(pairs) == len(rows),
                  detail=f"Smallest factor {factor:.1f} x ({where}); "
                  f"{len(pairs)} of {len(rows)} workloads compared.")


def _fan_out_burst(rows: Sequence[Row]) -> Target:
    name = "500-wide fan-out: all 500 started <= 15 ms after they became ready"
    fan = [row for row in rows if row["name"].startswith("fanout")]
    if not fan:
        return Target(name=name, met=None, detail="No fan-out workload.")
    ms = fan[0]["ours"]["burst_ms"]
    return Target(name=name, met=ms <= 15.0, detail=f"{ms:.1f} ms.")


def _rss(extras: Mapping[str, Any]) -> Target:
    rss = extras["rss_ours"]
    return Target(name=f"a {rss['tasks']:,}-task DAG runs under 300 MB peak RSS",
                  met=rss["peak_rss_mb"] < 300,
                  detail=f"{rss['peak_rss_mb']:.0f} MB peak (the interpreter with the "
                  f"orchestrator imported: {rss['baseline_rss_mb']:.0f} MB).")


def _streaming(extras: Mapping[str, Any]) -> Target:
    s = extras["streaming"]
    return Target(name="first dispatch of a streamed plan before 25% of generation time",
                  met=s["fraction"] < 0.25,
                  detail=f"{s['fraction']:.1%} (the first task's JSON is complete at "
                  f"{s['earliest_fraction']:.1%} of the reply).")


def _ratio(metrics: Mapping[str, float] | None, key: str) -> str:
    if not metrics or key not in metrics:
        return "-"
    return f"{metrics[key + '_measured']:.3f} ({metrics[key]:.3f})"


def _num(metrics: Mapping[str, float] | None, key: str, fmt: str = ".1f") -> str:
    if not metrics or key not in metrics:
        return "-"
    return format(metrics[key], fmt)


def _row(row: Row) -> str:
    ours, lg = row["ours"], row["langgraph"]
    factor = "-"
    if lg and "overhead_us" in lg:
        factor = f"{lg['overhead_us'] / ours['overhead_us']:.1f}x"
    cells = [
        f"{row['name']}", f"{row['tasks']:,}",
        _ratio(ours, "cp_ratio"), _ratio(ours, "ls_ratio"),
        _ratio(lg, "cp_ratio"), _ratio(lg, "ls_ratio"),
        f"{_num(ours, 'overhead_us')} / {_num(lg, 'overhead_us')} / {factor}",
        f"{_num(ours, 'overhead_cpu_us')} / {_num(lg, 'overhead_cpu_us')}",
        f"{_num(ours, 'ready_p50_ms', '.2f')} / {_num(ours, 'ready_p99_ms', '.2f')}",
        f"{_num(ours, 'burst_tasks', '.0f')}: {_num(ours, 'burst_ms')} / {_num(lg, 'burst_ms')}",
        f"{_num(ours, 'dep_p99_ms', '.2f')} / {_num(lg, 'dep_p99_ms', '.2f')}",
    ]
    return "| " + " | ".join(cells) + " |"


_HEADER = (
    "| workload | tasks | ours ÷ CP, uncapped | ours ÷ LS@16 | LangGraph ÷ CP | LangGraph ÷ LS@16 "
    "| overhead µs/task: ours / LG / LG÷ours | CPU µs/task: ours / LG "
    "| ready→started p50 / p99 ms | largest burst: tasks: ms to start all, ours / LG "
    "| dep done→started p99 ms: ours / LG |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def markdown(rows: Sequence[Row], extras: Mapping[str, Any], found: Sequence[Target]) -> str:
    """The whole report: per-workload table, single numbers, targets, notes."""
    env = extras["environment"]
    lines = [
        f"# Scheduler benchmark (issue 5): median of {env['repetitions']}",
        "",
        f"{env['started']}; Python {env['python']}, anyio {env['anyio']}, "
        f"LangGraph {env['langgraph']}; {env['cpus']} CPUs, load average "
        f"{env['load_before']:.2f} before, {env['load_after']:.2f} after; "
        f"{env['duration_s']:.0f} s{' (--quick)' if env['quick'] else ''}.",
        "",
        _HEADER,
        *(_row(row) for row in rows),
        "",
        *_single_numbers(extras),
        _slack_line(rows),
        "",
        "## Targets",
        "",
        *(t.line() for t in found),
        "",
        "## How to read it",
        "",
        *_NOTES,
        *(f"- {note}" for row in rows if (note := row.get("note"))),
    ]
    return "\n".join(lines) + "\n"


def _slack_line(rows: Sequence[Mapping[str, Any]]) -> str:
    slack = [f"{row['name']} {row['ours']['timer_slack_ms']:.2f}" for row in rows]
    return (
        "- Timer slack (how late a fake executor's sleep ended, median ms, our runs): "
        + ", ".join(slack)
        + ". This is the kernel's wake-up latency, on the precise-timer loop (`bench/loop.py`)."
    )


def _single_numbers(extras: Mapping[str, Any]) -> list[str]:
    ours, lg = extras["rss_ours"], extras.get("rss_langgraph")
    lg_text = "not measured" if not lg else f"{lg['peak_rss_mb']:.0f} MB"
    s = extras["streaming"]
    return [
        f"- Peak RSS, {ours['tasks']:,}-task random DAG uncapped, fresh interpreter: "
        f"ours {ours['peak_rss_mb']:.0f} MB (after imports {ours['baseline_rss_mb']:.0f} MB); "
        f"LangGraph {lg_text}.",
        f"- Plan preparation, {extras['prep']['tasks']:,} tasks (`validate_plan` + filling the "
        f"`Scheduler`): {extras['prep']['median_ms']:.1f} ms (median of "
        f"{extras['prep']['repeats']}).",
        f"- Streamed plan ({s['tasks']} tasks, {s['plan_chars']:,} characters, "
        f"{s['generation_s']:.2f} s to write): first `task_started` after "
        f"{s['first_dispatch_s'] * 1e3:.0f} ms = {s['fraction']:.1%} of the generation time "
        f"(earliest possible {s['earliest_fraction']:.1%}); measured through `{s['measured']}`.",
    ]


_NOTES = (
    "- Ratios: `a (b)` = makespan ÷ the bound computed from the durations the tasks really took "
    "in that run (a), and from the planned latencies (b). The gap between them is timer slack "
    "(a sleeping task wakes a little late), which no scheduler controls; (a) is what the "
    "scheduler and dispatcher cost. Both runners use the same event loop, whose selector waits "
    "in microseconds rather than epoll's whole milliseconds (`bench/loop.py`).",
    "- CP: critical path (longest latency path). LS@16: greedy list scheduling at a cap of 16, "
    "longest remaining path first, zero overhead (`bench/bounds.py`).",
    "- Overhead: a zero-latency uncapped run, wall time ÷ tasks (CPU: this process's CPU "
    "time ÷ tasks, less sensitive to other load on the machine). For the chain it is the "
    "latency of one hop.",
    "- ready→started: from the moment `Scheduler.succeed` returned the task (or the run started, "
    "for tasks ready at once) to the fake executor starting it, uncapped run, outside the "
    "largest burst (the largest set of tasks that became ready at one moment; its time to "
    "start all is its own column).",
    "- dep done→started: from the end of a task's last dependency to its start, uncapped; "
    "defined for both runners (for LangGraph this shows the superstep barrier).",
)
