"""`orchestrator runs list | show | gc` and `orchestrator report`: the recorded runs.

Reading creates nothing: where no run was ever recorded these say so instead of making a run root
(`runs.sqlite3`) wherever they are typed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from .cli_errors import UsageError
from .settings import Settings

if TYPE_CHECKING:
    from .store import RunRow, RunStore

_INDEX = "runs.sqlite3"


def add_runs_commands(
    command: Callable[..., argparse.ArgumentParser], *, parents: list[argparse.ArgumentParser]
) -> None:
    """`runs list | show | gc` and `report` (`command` is the subparsers' add_parser; `parents`
    hold the options every command has)."""
    runs = command("runs", help="past runs recorded under the run root")
    runs_sub = runs.add_subparsers(required=True)
    listing = runs_sub.add_parser("list", help="the latest runs", parents=parents)
    _workdir(listing)
    listing.set_defaults(func=cmd_runs_list)
    show = runs_sub.add_parser(
        "show", help="a run's tasks, costs and answer, finished or not", parents=parents
    )
    show.add_argument("run_id")
    _workdir(show)
    show.set_defaults(func=cmd_runs_show)
    gc = runs_sub.add_parser(
        "gc",
        help="remove workspace copies that stopped runs left behind (not of running runs)",
        parents=parents,
    )
    _workdir(gc)
    gc.set_defaults(func=cmd_runs_gc)
    report = command(
        "report",
        help="write a run's report: one self-contained HTML file (DAG, timeline, costs)",
        parents=parents,
    )
    report.add_argument("run_id", help="as `orchestrator runs list` shows it")
    _workdir(report)
    report.add_argument("--out", type=Path, help="the file to write (default: RUN_DIR/report.html)")
    report.add_argument("--open", action="store_true", help="open it in the web browser")
    report.set_defaults(func=cmd_report)


def _workdir(command: argparse.ArgumentParser) -> None:
    command.add_argument("--workdir", default=".", help="where the run root is (as for `run`)")


def cmd_runs_list(args: argparse.Namespace) -> int:
    """The latest runs; a cost that is not known (unpriced models) shows as such, never as $0."""
    from .errors import JournalError
    from .journal import read_state
    from .models import Usage
    from .show import listed_cost

    store = _open_store(run_root(args.workdir))
    if store is None:
        return 0

    def usage_of(row: RunRow) -> Usage | None:
        # The index keeps a bare number; the result knows which models had no price. A run
        # with no result yet (running, interrupted) has spent what its journal says so far.
        try:
            return store.load_result(row.run_id).usage
        except FileNotFoundError:
            pass
        except ValueError:  # a result.json this version cannot read
            return None
        try:
            return read_state(Path(row.run_dir)).ledger.total
        except JournalError:
            return None

    try:
        rows = store.list_runs()
        if not rows:
            print(f"no runs under {store.root}")
        for row in rows:
            cost = listed_cost(usage_of(row))
            print(f"{row.run_id}  {row.status:<9} {cost:>10}  {row.goal[:70]}")
    finally:
        store.close()
    return 0


def cmd_runs_gc(args: argparse.Namespace) -> int:
    """Remove the task copies of every run that is not running (crashed runs leave theirs)."""
    from .workspaces import Workspaces

    store = _open_store(run_root(args.workdir))
    if store is None:
        return 0
    try:
        stopped = [r for r in store.list_runs(limit=1_000_000) if r.status != "running"]
    finally:
        store.close()
    removed = 0
    for row in stopped:
        ws = Path(row.run_dir) / "ws"
        if ws.is_dir():
            removed += anyio.run(Workspaces.gc, ws)
    print(f"removed {removed} workspace cop{'y' if removed == 1 else 'ies'} of {len(stopped)} runs")
    return 0


def cmd_runs_show(args: argparse.Namespace) -> int:
    """A run from its journal, the same way whether it finished, runs or was interrupted."""
    from .errors import JournalError
    from .journal import read_state
    from .report import render_result
    from .show import PLAIN_WIDTH, render_run
    from .store import RunStore

    root = run_root(args.workdir)
    run_dir = _run_dir(root, args.run_id)
    store = RunStore(root) if (root / _INDEX).is_file() else None
    try:
        row = store.row(args.run_id) if store is not None else None
        try:
            state = read_state(run_dir)
        except JournalError:
            if store is None or not (run_dir / "result.json").is_file():
                raise
            # A run from before runs were journaled: its result is all there is.
            print(render_result(store.load_result(args.run_id)))
            return 0
    finally:
        if store is not None:
            store.close()
    running = state.status is None and row is not None and row.status == "running"
    status = state.status or ("running" if running else "interrupted")
    tty = sys.stdout.isatty()
    width = shutil.get_terminal_size().columns if tty else PLAIN_WIDTH
    now = time.time() if running else None  # tasks still going: their time so far
    print(render_run(state, status=status, width=width, color=tty, now=now))
    if status == "interrupted":
        print(f"resume it with: orchestrator resume {args.run_id}", file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write the run's HTML report and print where it is."""
    from .journal import JOURNAL_FILE
    from .report_html import write_report

    run_dir = _run_dir(run_root(args.workdir), args.run_id)
    if not (run_dir / JOURNAL_FILE).is_file():
        raise UsageError(
            f"run {args.run_id} has no journal (it was recorded before runs were journaled)",
            fix="`orchestrator runs show` prints what it has",
        )
    out: Path | None = args.out
    if out is not None and not out.parent.is_dir():
        raise UsageError(
            f"no such directory for --out: {out.parent}", fix="create it first, or write elsewhere"
        )
    path = write_report(run_dir, out)
    print(path)
    if args.open:
        import webbrowser

        if not webbrowser.open(path.resolve().as_uri()):
            print(f"no web browser found: open {path} yourself", file=sys.stderr)
    return 0


def run_root(workdir: str) -> Path:
    """The run root of `workdir`: ORCH_RUN_ROOT, relative to the workdir unless absolute."""
    root = Settings.from_env().run_root
    return root if root.is_absolute() else Path(workdir) / root


def _open_store(root: Path) -> RunStore | None:
    """The index of `root`, or None (and says so) where no run was ever recorded."""
    from .store import RunStore

    if not (root / _INDEX).is_file():
        print(f"no runs under {root}")
        return None
    return RunStore(root)


def _run_dir(root: Path, run_id: str) -> Path:
    """The run's directory; `UsageError` when there is no such run (or the id is a path)."""
    run_dir = root / run_id
    if not run_id or Path(run_id).name != run_id or not run_dir.is_dir():
        raise UsageError(
            f"no run {run_id!r} under {root}",
            fix="see `orchestrator runs list` (with the same --workdir)",
        )
    return run_dir
