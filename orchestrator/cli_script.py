"""Goal scripts: `orchestrator run script.py` imports the file and awaits its `async def main()`
with what a goal gets: the checks, the one-line errors and the Ctrl-C that prints partial results.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from .cancel import CancelToken, cancel_scope
from .cli_errors import EXIT_FAILED, ScriptError, UsageError, named, primary_error
from .cli_plan import script_refusal
from .cli_run import print_result
from .cli_signals import run_with_signals
from .errors import OrchestratorError, RunAbortedError
from .settings import Settings

Entry = Callable[[], Awaitable[object]]


def run_script(path: Path, args: argparse.Namespace, *, settings: Settings, workdir: Path) -> int:
    """Run the script's `main()` in `workdir`; the flags reach it through its environment.

    Returns what `main()` returns when that is an int (else 0); 128+N when signal N stopped it,
    after the partial result of every run it had started is printed.
    """
    _refuse_flags(args)
    script = path.resolve()
    _export_flags(args, settings)
    os.chdir(workdir)
    entry = _load(script)
    if args.verbose:
        from .logs import configure_logging

        configure_logging(level=logging.INFO)
    since = time.time()
    stop = CancelToken()

    async def go() -> int | None:
        with cancel_scope((stop,)):
            return await _awaited(entry)
        return None  # a stop signal cancelled it

    outcome = run_with_signals(go, stop.cancel)
    if outcome.error is not None:
        main = primary_error(outcome.error)
        if isinstance(main, RunAbortedError):
            print_result(main.result, as_json=False)
        if isinstance(main, OrchestratorError):
            raise outcome.error
        raise ScriptError(f"script {path} raised {named(main)}") from outcome.error
    if outcome.value is None:
        _print_runs_since(since)
        return outcome.signal_status() or EXIT_FAILED
    return outcome.value


def _refuse_flags(args: argparse.Namespace) -> None:
    """The flags a script decides for itself are errors, not silently ignored."""
    if (refusal := script_refusal(args)) is not None:
        raise refusal
    if args.json:
        raise UsageError(
            "--json needs a goal, not a script",
            fix="a script prints its own output (orchestrator.store.result_json gives the JSON)",
        )
    if args.review is not None:
        raise UsageError(
            "--review needs a goal, not a script", fix="pass Orchestrator(review=...) in it"
        )


def _export_flags(args: argparse.Namespace, settings: Settings) -> None:
    """The backend flags as the variables `Settings.from_env()` reads in the script."""
    given = {
        "OPENAI_BASE_URL": args.base_url,
        "ORCH_BACKEND": args.backend,
        "ORCH_API_STYLE": args.api_style,
        "ORCH_MODELS": ",".join(settings.models)
        if args.models is not None and settings.models
        else None,
        "ORCH_MAX_PARALLEL": None if args.max_parallel is None else str(args.max_parallel),
        "ORCH_SERVER": args.server,
        "ORCH_GEN": None if args.gen is None else str(settings.generation),
        "ORCH_RECORD": None if args.record is None else str(settings.record),
        "ORCH_REPLAY": None if args.replay is None else str(settings.replay),
    }
    exported = {name: value for name, value in given.items() if value is not None}
    # The one write to the environment: the script's Orchestrator() reads its settings there.
    os.environ.update(exported)  # noqa: TID251


def _load(script: Path) -> Entry:
    """Import the script and return its `async def main()`; `UsageError` when it has none."""
    spec = importlib.util.spec_from_file_location(f"_orchestrator_script_{script.stem}", script)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot load {script}", fix="give a Python file ending in .py")
    root = str(script.parent.parent)  # so `examples/x.py` may import `examples.y`
    if root not in sys.path:
        sys.path.insert(0, root)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise UsageError(
            f"script {script} does not parse: {exc.msg} (line {exc.lineno})",
            fix="fix the script (`python -m py_compile` shows the same error)",
        ) from exc
    except Exception as exc:
        raise UsageError(
            f"script {script} failed while loading: {named(exc)}",
            fix="run with --debug for the traceback",
        ) from exc
    entry: object = getattr(module, "main", None)
    if not inspect.iscoroutinefunction(entry):
        raise UsageError(
            f"{script} has no `async def main()`",
            fix="define one; it is awaited with no arguments",
        )
    return entry


async def _awaited(entry: Entry) -> int:
    """Await `main()`; its int (or SystemExit's) is the exit status."""
    try:
        returned = await entry()
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            return EXIT_FAILED
        returned = exc.code
    return returned if isinstance(returned, int) else 0


def _print_runs_since(since: float) -> None:
    """Print the result of each run the script started (in the run root where it ran)."""
    from .report import render_result
    from .store import RunRow, RunStore

    root = Settings.from_env().run_root
    rows: list[RunRow] = []
    if (root / "runs.sqlite3").is_file():
        store = RunStore(root)
        try:
            rows = [row for row in store.list_runs(limit=1000) if row.started_at >= since]
            for row in reversed(rows):  # oldest first, as they started
                try:
                    print(render_result(store.load_result(row.run_id)))
                except (OSError, ValueError):  # no result.json (yet): the journal has the rest
                    print(f"run {row.run_id}: {row.status} (orchestrator runs show {row.run_id})")
        finally:
            store.close()
    if not rows:
        print("cancelled: the script had started no run", file=sys.stderr)
