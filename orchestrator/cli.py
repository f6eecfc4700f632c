"""`orchestrator` command line: run a goal or an example script, list tools, inspect past runs.

Before anything else it hides the credentials in its environment from child processes, and
everything it prints (results, errors, logs, tracebacks) goes through a redacting stream.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import inspect
import io
import logging
import os
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Generator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO, cast

import anyio

from .cli_plan import REFUSED, add_plan_flags, approval, plan_only, script_refusal
from .cli_progress import progress_sinks
from .errors import OrchestratorError, PlanValidationError, RunAbortedError
from .secrets import Redactor, protect_process_secrets
from .settings import Settings, secret_variables

if TYPE_CHECKING:
    from .app import Orchestrator
    from .models import RunResult

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_RECANCEL_S = 0.1
"""After the first stop signal, how often the cancel is repeated (see `_StopSignals.serve`)."""
_CANCELLING = "cancelling: stopping every task (partial result follows)"
_ALREADY_STOPPING = "already stopping: the partial result follows"
_RUN_EPILOG = (
    "Ctrl-C (SIGINT) or SIGTERM stops the run: running tasks are cancelled and the partial "
    "result is printed and saved (result.json of the run). Further signals are ignored until "
    "it is printed. Exit status: 0 completed; 1 not completed; 2 usage, configuration or plan "
    "error; 128+N when signal N stopped the run, as shells report a death by signal: 130 for "
    "SIGINT, 143 for SIGTERM."
)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `orchestrator` script; returns the process exit code."""
    redactor = protect_secrets()
    with redacted_output(redactor):
        args = _parser().parse_args(argv)
        return _dispatch(args)


def protect_secrets() -> Redactor:
    """Hide the environment's credentials from our children; return the redactor for our output.

    The values stay in `os.environ` (settings read them later), but they leave the memory that
    `/proc/<pid>/environ` shows and the environment children inherit by default.
    """
    found = secret_variables()
    protect_process_secrets(found)
    return Redactor(found.values())


@contextmanager
def redacted_output(redactor: Redactor) -> Generator[None]:
    """Route sys.stdout and sys.stderr through `redactor` until the block ends."""
    saved = sys.stdout, sys.stderr
    sys.stdout = RedactingStream(saved[0], redactor)
    sys.stderr = RedactingStream(saved[1], redactor)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = saved


class RedactingStream(io.TextIOBase):
    """A text stream that redacts each write before passing it on.

    `print` and `traceback` write whole strings, so a secret is never split between two writes.
    """

    def __init__(self, target: TextIO, redactor: Redactor) -> None:
        super().__init__()
        self._target = target
        self._redact = redactor

    def write(self, s: str, /) -> int:
        """Write `s` redacted; returns len(s), as if all of it went through."""
        self._target.write(self._redact(s))
        return len(s)

    def flush(self) -> None:
        """Flush the target."""
        self._target.flush()

    def isatty(self) -> bool:
        """Whether the target is a terminal (renderers pick colours from this)."""
        return self._target.isatty()

    def fileno(self) -> int:
        """The target's descriptor."""
        return self._target.fileno()

    def writable(self) -> bool:
        """Always: this stream only writes."""
        return True

    @property
    def encoding(self) -> str:  # pyright: ignore[reportIncompatibleVariableOverride]
        """The target's encoding (None on io.TextIOBase would break callers that read it)."""
        # A property because io.TextIOBase's is a read-only descriptor; typeshed calls it a field.
        return self._target.encoding


def _dispatch(args: argparse.Namespace) -> int:
    try:
        return int(_unwrapped(args.func, args))
    except PlanValidationError as exc:
        print(
            f"error: no valid plan: {exc} (tasks: {', '.join(exc.task_ids) or '-'})",
            file=sys.stderr,
        )
        return 2
    except RunAbortedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OrchestratorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception:
        # A bug: print its traceback as Python would at exit, but through the redacting stream.
        traceback.print_exc()
        return 1


def _unwrapped(func: Any, args: argparse.Namespace) -> Any:
    """Call `func(args)`; an error group holding one error (a run's task group) becomes that error,
    so it gets its one-line message instead of a traceback."""
    try:
        return func(args)
    except ExceptionGroup as group:
        sole = _sole_error(group)
        if sole is None:
            raise
        raise sole from group


def _sole_error(group: BaseExceptionGroup[BaseException]) -> Exception | None:
    """The one error inside nested single-member groups, if that is what `group` is."""
    if len(group.exceptions) != 1:
        return None
    only: BaseException = group.exceptions[0]
    if isinstance(only, BaseExceptionGroup):
        return _sole_error(cast("BaseExceptionGroup[BaseException]", only))
    return only if isinstance(only, Exception) else None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orchestrator", description=__doc__)
    sub = parser.add_subparsers(required=True)
    run = sub.add_parser(
        "run", help="run a goal, or an example script (path ending in .py)", epilog=_RUN_EPILOG
    )
    run.add_argument("target", help="a goal in quotes, or a path like examples/word_counts.py")
    _backend_arguments(run, workdir_help="the workspace executors may touch")
    add_plan_flags(run)
    run.set_defaults(func=_cmd_run)
    resume = sub.add_parser(
        "resume",
        help="continue an interrupted or cancelled run from its journal",
        epilog=_RUN_EPILOG,
    )
    resume.add_argument("run_id", help="as `orchestrator runs list` shows it")
    _backend_arguments(resume, workdir_help="where the run root is (as for `run`)")
    resume.set_defaults(func=_cmd_resume)
    tools = sub.add_parser("tools", help="tool registry")
    tools_sub = tools.add_subparsers(required=True)
    listing = tools_sub.add_parser("list", help="list registered tools with their schemas")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_cmd_tools_list)
    runs = sub.add_parser("runs", help="past runs recorded under the run root")
    runs_sub = runs.add_subparsers(required=True)
    runs_list = runs_sub.add_parser("list")
    runs_list.add_argument("--workdir", default=".")
    runs_list.set_defaults(func=_cmd_runs_list)
    gc = runs_sub.add_parser(
        "gc", help="remove workspace copies that stopped runs left behind (not of running runs)"
    )
    gc.add_argument("--workdir", default=".")
    gc.set_defaults(func=_cmd_runs_gc)
    show = runs_sub.add_parser("show")
    show.add_argument("run_id")
    show.add_argument("--workdir", default=".")
    show.set_defaults(func=_cmd_runs_show)
    return parser


def _backend_arguments(command: argparse.ArgumentParser, *, workdir_help: str) -> None:
    """The options `run` and `resume` share: where, which backend and models, how to print."""
    command.add_argument("--workdir", default=".", help=workdir_help)
    command.add_argument("--base-url", help="an OpenAI-compatible server (vLLM, Ollama, llama.cpp)")
    command.add_argument("--backend", choices=["auto", "openai", "compatible", "local"])
    command.add_argument("--api-style", choices=["responses", "chat"])
    command.add_argument("--models", help="tier ladder as model ids, bottom first, comma-separated")
    command.add_argument("--max-parallel", type=int)
    command.add_argument("--review", choices=["all", "none"], default="all")
    command.add_argument("--json", action="store_true", help="print the result as JSON")
    command.add_argument(
        "-v", "--verbose", action="store_true", help="log every event (structlog) to stderr"
    )


def _settings(args: argparse.Namespace) -> Settings:
    models = tuple(args.models.split(",")) if args.models else None
    return Settings.from_env(
        base_url=args.base_url,
        backend=args.backend,
        api_style=args.api_style,
        models=models,
        max_parallel=args.max_parallel,
    )


def _cmd_run(args: argparse.Namespace) -> int:
    target = Path(args.target)
    if args.target.endswith(".py"):
        if (refusal := script_refusal(args)) is not None:
            print(refusal, file=sys.stderr)
            return 2
        if not target.is_file():
            print(f"error: no such example script: {target}", file=sys.stderr)
            return 2
        return _run_script(target)
    from .app import Orchestrator
    from .logs import configure_logging

    configure_logging(level=logging.INFO if args.verbose else logging.WARNING)
    refused: list[str] = []
    orch = Orchestrator(
        workdir=args.workdir,
        settings=_settings(args),
        review=args.review,
        sinks=progress_sinks(as_json=args.json),
        on_plan=approval(refused, as_json=args.json) if args.approve else None,
    )
    if args.plan_only:
        return plan_only(orch, args.target, as_json=args.json)

    run = functools.partial(orch.run, args.target)
    code = _run_with_signals(run, orch.cancel, _printer(orch, as_json=args.json))
    if refused and code == 1:  # refusing is an answer, not a failure (see `--approve`)
        print(REFUSED, file=sys.stderr if args.json else sys.stdout)
        return 0
    return code


def _printer(orch: Orchestrator, *, as_json: bool) -> Callable[[RunResult], None]:
    """What `run` and `resume` print at the end: the backend's notice, then the result."""

    def render(result: RunResult) -> None:
        from .report import render_result
        from .store import result_json

        if orch.notice:
            print(orch.notice, file=sys.stderr)
        print(result_json(result).decode() if as_json else render_result(result))

    return render


def _run_with_signals(
    run: Callable[[], Awaitable[RunResult]],
    cancel: Callable[[], None],
    render: Callable[[RunResult], None],
) -> int:
    """Await `run()`, print its result with `render`, and return the exit status.

    The first SIGINT or SIGTERM calls `cancel`: the run stops dispatching, cancels its running
    work and returns its partial result (status cancelled, saved to its result.json), printed
    like any other. Later ones only print a notice. From this call until the process exits the
    two signals cannot kill it, so one landing during cleanup, printing or the interpreter's
    shutdown loses nothing (once the result is printed they are ignored: call this last).

    Returns:
        0 when the run completed; 128+N when signal N stopped it (the shell's convention for a
        death by signal, see `_RUN_EPILOG`); 1 otherwise.
    """
    stops = _StopSignals()

    async def go() -> tuple[RunResult, int | None]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(stops.serve, cancel)
            result = await run()
            stopped_by = stops.first
            render(result)  # still inside: the receiving task keeps absorbing signals
            sys.stdout.flush()
            sys.stderr.flush()
            tg.cancel_scope.cancel()
            return result, stopped_by
        raise AssertionError("unreachable: the task group re-raises what ends it")  # for pyright

    try:
        result, stopped_by = anyio.run(go)
    finally:
        # Ignored from here to the exit: interpreter shutdown puts the default action back in
        # place of a Python handler (not of SIG_IGN), and it can take long enough for one to land.
        for signum in _STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
    if result.status == "completed":
        return 0
    return 1 if stopped_by is None else 128 + stopped_by


class _StopSignals:
    """SIGINT and SIGTERM, caught from construction on.

    Not `anyio.open_signal_receiver`: closing it restores the default actions, so a signal landing
    after that but before the exit (while the result is still printed or flushed) would kill the
    process (SIGTERM) or raise KeyboardInterrupt in the middle of the print (SIGINT). The handler
    stays installed instead, and hands each signal to the event loop through a pipe.
    """

    def __init__(self) -> None:
        self.first: int | None = None
        """The first stop signal received, if any."""
        self._announced = 0
        # Never closed: the handler writes to it for as long as the process lives.
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        for signum in _STOP_SIGNALS:
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Runs on the main thread between two bytecodes: note it, wake the loop, nothing more
        # (printing here could re-enter a write the main thread is in the middle of).
        if self.first is None:
            self.first = signum
        with contextlib.suppress(BlockingIOError):  # full: the loop has enough to wake for
            os.write(self._write, bytes((signum,)))

    async def serve(self, cancel: Callable[[], None]) -> None:
        """Call `cancel` on the first signal, then again every `_RECANCEL_S` and on each signal.

        Repeated because a cancel that lands before the run has started its work (while the
        backend starts) finds nothing to cancel; `cancel` is idempotent.
        """
        while True:
            with anyio.move_on_after(None if self.first is None else _RECANCEL_S):
                await anyio.wait_readable(self._read)
                self._announce()
            if self.first is not None:
                cancel()

    def _announce(self) -> None:
        """Say what each signal received since the last call does."""
        with contextlib.suppress(BlockingIOError):  # woken for nothing: nothing to say
            for _ in os.read(self._read, 64):
                if self._announced:
                    print(_ALREADY_STOPPING, file=sys.stderr)
                else:
                    print(_CANCELLING, file=sys.stderr)
                self._announced += 1


def _run_script(path: Path) -> int:
    """Import an example by path and run its `async def main()`."""
    spec = importlib.util.spec_from_file_location(f"_orchestrator_example_{path.stem}", path)
    if spec is None or spec.loader is None:
        print(f"error: cannot load {path}", file=sys.stderr)
        return 2
    root = str(path.resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    entry = getattr(module, "main", None)
    if entry is None or not inspect.iscoroutinefunction(entry):
        print(f"error: {path} has no `async def main()`", file=sys.stderr)
        return 2
    outcome = anyio.run(entry)
    return outcome if isinstance(outcome, int) else 0


def _cmd_resume(args: argparse.Namespace) -> int:
    """Continue a run from its journal; finished tasks are kept, in-flight ones run again."""
    from .app import Orchestrator
    from .logs import configure_logging

    configure_logging(level=logging.INFO if args.verbose else logging.WARNING)
    orch = Orchestrator(
        workdir=args.workdir,
        settings=_settings(args),
        review=args.review,
        sinks=progress_sinks(as_json=args.json),
    )

    resume = functools.partial(orch.resume, args.run_id)
    return _run_with_signals(resume, orch.cancel, _printer(orch, as_json=args.json))


def _cmd_tools_list(args: argparse.Namespace) -> int:
    from .app import default_tools
    from .tools.listing import render_tool_listing
    from .tools.registry import ToolRegistry

    registry = ToolRegistry()
    for t in default_tools(shell_sandbox=Settings.from_env().shell_sandbox):
        registry.register(t)
    registry.load_entry_points()
    print(render_tool_listing(registry, as_json=args.json))
    return 0


def _cmd_runs_list(args: argparse.Namespace) -> int:
    """The latest runs; a cost that is not known (unpriced models) shows as such, never as $0."""
    from .errors import JournalError
    from .journal import read_state
    from .models import Usage
    from .show import listed_cost
    from .store import RunRow, RunStore

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

    store = RunStore(_run_root(args.workdir))
    for row in store.list_runs():
        cost = listed_cost(usage_of(row))
        print(f"{row.run_id}  {row.status:<9} {cost:>10}  {row.goal[:70]}")
    store.close()
    return 0


def _cmd_runs_gc(args: argparse.Namespace) -> int:
    """Remove the task copies of every run that is not running (crashed runs leave theirs)."""
    from .store import RunStore
    from .workspaces import Workspaces

    root = _run_root(args.workdir)
    if not root.is_dir():
        print(f"no runs under {root}")
        return 0
    store = RunStore(root)
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


def _cmd_runs_show(args: argparse.Namespace) -> int:
    """A run from its journal, the same way whether it finished, runs or was interrupted."""
    from .errors import JournalError
    from .journal import read_state
    from .report import render_result
    from .show import PLAIN_WIDTH, render_run
    from .store import RunStore

    store = RunStore(_run_root(args.workdir))
    try:
        row = store.row(args.run_id)
        run_dir = store.root / args.run_id
        if row is None and not run_dir.is_dir():
            print(f"error: no run {args.run_id} under {store.root}", file=sys.stderr)
            return 2
        try:
            state = read_state(run_dir)
        except JournalError as exc:
            if not (run_dir / "result.json").is_file():
                print(f"error: {exc}", file=sys.stderr)
                return 2
            # A run from before runs were journaled: its result is all there is.
            print(render_result(store.load_result(args.run_id)))
            return 0
        running = state.status is None and row is not None and row.status == "running"
        status = state.status or ("running" if running else "interrupted")
        tty = sys.stdout.isatty()
        width = shutil.get_terminal_size().columns if tty else PLAIN_WIDTH
        now = time.time() if running else None  # tasks still going: their time so far
        print(render_run(state, status=status, width=width, color=tty, now=now))
        if status == "interrupted":
            print(f"resume it with: orchestrator resume {args.run_id}", file=sys.stderr)
    finally:
        store.close()
    return 0


def _run_root(workdir: str) -> Path:
    root = Settings.from_env().run_root
    return root if root.is_absolute() else Path(workdir) / root


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
