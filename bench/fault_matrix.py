"""The fault matrix of issue 9: the whole engine against a fault-injecting OpenAI-compatible server.

Run with: `python -m bench.fault_matrix` (200 and 1,000 tasks x 0/10/20 % faults of every kind x
3 seeds x chat and responses; review on, streaming planner, 8 parallel), or
`python -m bench.fault_matrix --quick` (200 tasks x 0/20 % x 1 seed). Not part of CI.
Prints one row per cell and writes them to `bench/results/fault_matrix.md`, in a section named by
`--label` (a section of the same label is replaced, others are kept: before / after side by side).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Literal

import anyio

from bench.sections import head_commit, write_section
from tests.fault_plan import ALL_KINDS, FaultKind

from .fault_cell import Cell, CellResult, run_cell

RESULTS = Path(__file__).parent / "results"
_HEADING = "# Fault matrix (issue 9)\n\nWritten by `python -m bench.fault_matrix`."
_COLUMNS = (
    "tasks",
    "api",
    "faults",
    "seed",
    "status",
    "lost",
    "failed/skipped/unrev.",
    "HTTP ÷ calls",
    "max attempts",
    "worker req ÷ task",
    "transport esc.",
    "tool re-runs",
    "faults sent",
    "wall s",
    "wall ÷ 0 %",
)

_LEGEND = (
    "lost: tasks not succeeded (failed, skipped, unreviewed, never planned). unrev.: Unreviewed "
    "results, or (engines before them) tasks accepted after a failed review call. HTTP ÷ calls: "
    "requests that reached the server ÷ distinct bodies (stream flags aside; refused connections "
    "are not seen). max attempts: most requests for one body. worker req ÷ task: 2.00 when every "
    "task sent its two turns once; it also sees whole attempts re-run with feedback (new bodies). "
    "transport esc.: escalations whose trigger is api_error / timeout / outage. tool re-runs: "
    "executions beyond the first per task. wall ÷ 0 %: against the median 0 % cell of the same "
    "size and API."
)


def cells(args: argparse.Namespace) -> list[Cell]:
    """Every cell the arguments ask for, 0 % first within each size and API."""
    base = Cell(
        n_tasks=0,
        rate=0.0,
        seed=0,
        api="chat",
        latency_s=args.latency,
        timeout_s=args.timeout,
        retry_after_s=args.retry_after,
        kinds=tuple(args.kinds),
        max_parallel=args.parallel,
        cell_timeout_s=args.cell_timeout,
        retry_base_s=args.retry_base,
    )
    apis: list[Literal["chat", "responses"]] = args.apis
    return [
        replace(base, n_tasks=n, api=api, rate=rate, seed=seed)
        for n in args.sizes
        for api in apis
        for rate in sorted(args.rates)
        for seed in args.seeds
    ]


def row(result: CellResult, reference_s: float | None) -> list[str]:
    cell, kinds = result.cell, result.by_kind
    ratio = f"{result.wall_s / reference_s:.2f}" if reference_s else "–"
    return [
        f"{cell.n_tasks:,}",
        cell.api,
        f"{cell.rate:.0%}",
        str(cell.seed),
        result.status,
        str(result.lost),
        f"{kinds.get('failed', 0)}/{kinds.get('skipped', 0)}/{result.unreviewed}",
        f"{result.attempts_ratio:.2f}",
        str(result.max_attempts),
        f"{result.worker_requests_per_task:.2f}",
        str(result.transport_escalations),
        str(result.tool_reruns),
        str(result.faults),
        f"{result.wall_s:.1f}",
        ratio,
    ]


def table(results: Sequence[CellResult]) -> str:
    """The markdown table; wall ÷ 0 % uses the median 0 % wall time of the same size and API."""
    references: dict[tuple[int, str], list[float]] = {}
    for r in results:
        if r.cell.rate == 0:
            references.setdefault((r.cell.n_tasks, r.cell.api), []).append(r.wall_s)
    lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    for r in results:
        walls = references.get((r.cell.n_tasks, r.cell.api))
        reference = statistics.median(walls) if walls else None
        lines.append("| " + " | ".join(row(r, reference)) + " |")
    return "\n".join(lines)


def section(label: str, args: argparse.Namespace, results: Sequence[CellResult]) -> str:
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    errors = sum(r.responder_errors for r in results)
    kinds = "every kind" if tuple(args.kinds) == ALL_KINDS else ", ".join(args.kinds)
    notes = [
        f"## {label}",
        "",
        f"{when}; engine at `{head_commit()}`; Python {platform.python_version()}; "
        f"{len(results)} cells. Fault kinds, drawn uniformly: {kinds}; "
        f"server latency {args.latency * 1000:.0f} ms per reply; client timeout {args.timeout:g} s "
        f"(the cost of a `hang`); 429s carry Retry-After {args.retry_after:g} s; "
        f"backoff base {args.retry_base:g} s (full jitter, cap 80x); "
        f"max_parallel {args.parallel}; review on; streaming planner.",
        "",
        table(results),
        "",
        _LEGEND,
    ]
    if errors:
        notes += ["", f"**The responder raised {errors} time(s): a harness bug, not a fault.**"]
    return "\n".join(notes) + "\n"


async def main_async(args: argparse.Namespace) -> list[CellResult]:
    results: list[CellResult] = []
    for cell in cells(args):
        result = await run_cell(cell)
        results.append(result)
        print(
            f"{cell.n_tasks:>5} {cell.api:9} {cell.rate:4.0%} seed {cell.seed}: {result.status:28}"
            f" lost {result.lost:4}  x{result.attempts_ratio:.2f}  {result.wall_s:6.1f} s",
            file=sys.stderr,
            flush=True,
        )
    return results


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="200 tasks x 0/20 %% x 1 seed")
    parser.add_argument("--sizes", type=_ints, default=None, help="e.g. 200,1000")
    parser.add_argument("--rates", type=_floats, default=None, help="e.g. 0,0.1,0.2")
    parser.add_argument("--seeds", type=_ints, default=None, help="e.g. 1,2,3")
    parser.add_argument("--apis", type=_apis, default=["chat", "responses"], help="chat,responses")
    parser.add_argument(
        "--kinds", type=_kinds, default=list(ALL_KINDS), help="fault kinds (default: all)"
    )
    parser.add_argument("--latency", type=float, default=0.02, help="server seconds per reply")
    parser.add_argument("--timeout", type=float, default=1.0, help="client timeout, seconds")
    parser.add_argument("--retry-after", type=float, default=0.25, help="Retry-After of a 429")
    parser.add_argument(
        "--retry-base", type=float, default=0.2, help="RetryPolicy.base_delay_s (default 0.2)"
    )
    parser.add_argument("--parallel", type=int, default=8, help="Limits.max_parallel")
    parser.add_argument("--cell-timeout", type=float, default=300.0, help="seconds per cell")
    parser.add_argument("--label", default=None, help="the section name in the results file")
    parser.add_argument("--out", type=Path, default=RESULTS / "fault_matrix.md")
    args = parser.parse_args(argv)
    args.sizes = args.sizes or ([200] if args.quick else [200, 1000])
    args.rates = args.rates or ([0.0, 0.2] if args.quick else [0.0, 0.1, 0.2])
    args.seeds = args.seeds or ([1] if args.quick else [1, 2, 3])
    args.label = args.label or f"{head_commit()} ({'quick' if args.quick else 'full'})"
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    results = anyio.run(main_async, args)
    text = section(args.label, args, results)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_section(
        args.out,
        args.label,
        text,
        heading=_HEADING,
    )


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def _floats(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part]


def _kinds(text: str) -> list[FaultKind]:
    asked = {part for part in text.split(",") if part}
    kinds: list[FaultKind] = [k for k in ALL_KINDS if k in asked]
    if len(kinds) != len(asked):
        raise argparse.ArgumentTypeError(f"kinds are some of {', '.join(ALL_KINDS)}")
    return kinds


def _apis(text: str) -> list[str]:
    apis = [part for part in text.split(",") if part]
    if not set(apis) <= {"chat", "responses"}:
        raise argparse.ArgumentTypeError("apis are chat and/or responses")
    return apis


if __name__ == "__main__":
    main()
