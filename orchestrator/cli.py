"""`orchestrator` command line: run a goal or an example script, list tools, inspect past runs.

Before anything else it hides the credentials in its environment from child processes, and
everything it prints (results, errors, logs, tracebacks) goes through a redacting stream.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import io
import logging
import signal
import sys
import traceback
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO, cast

import anyio

from .errors import OrchestratorError, PlanValidationError, RunAbortedError
from .secrets import Redactor, protect_process_secrets
from .settings import Settings, secret_variables


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
    run = sub.add_parser("run", help="run a goal, or an example script (path ending in .py)")
    run.add_argument("target", help="a goal in quotes, or a path like examples/word_counts.py")
    run.add_argument("--workdir", default=".", help="the workspace executors may touch")
    run.add_argument("--base-url", help="an OpenAI-compatible server (vLLM, Ollama, llama.cpp)")
    run.add_argument("--backend", choices=["auto", "openai", "compatible", "local"])
    run.add_argument("--api-style", choices=["responses", "chat"])
    run.add_argument("--models", help="tier ladder as model ids, bottom first, comma-separated")
    run.add_argument("--max-parallel", type=int)
    run.add_argument("--review", choices=["all", "none"], default="all")
    run.add_argument("--json", action="store_true", help="print the result as JSON")
    run.add_argument(
        "-v", "--verbose", action="store_true", help="log every event (structlog) to stderr"
    )
    run.set_defaults(func=_cmd_run)
    resume = sub.add_parser(
        "resume", help="continue an interrupted or cancelled run from its journal"
    )
    resume.add_argument("run_id", help="as `orchestrator runs list` shows it")
    resume.add_argument("--workdir", default=".", help="where the run root is (as for `run`)")
    resume.add_argument("--base-url", help="an OpenAI-compatible server (vLLM, Ollama, llama.cpp)")
    resume.add_argument("--backend", choices=["auto", "openai", "compatible", "local"])
    resume.add_argument("--api-style", choices=["responses", "chat"])
    resume.add_argument("--models", help="tier ladder as model ids, bottom first, comma-separated")
    resume.add_argument("--max-parallel", type=int)
    resume.add_argument("--review", choices=["all", "none"], default="all")
    resume.add_argument("--json", action="store_true", help="print the result as JSON")
    resume.add_argument(
        "-v", "--verbose", action="store_true", help="log every event (structlog) to stderr"
    )
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
    show = runs_sub.add_parser("show")
    show.add_argument("run_id")
    show.add_argument("--workdir", default=".")
    show.set_defaults(func=_cmd_runs_show)
    return parser


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
        if not target.is_file():
            print(f"error: no such example script: {target}", file=sys.stderr)
            return 2
        return _run_script(target)
    from .app import Orchestrator
    from .logs import StructlogSink, configure_logging
    from .report import ProgressSink, render_result

    configure_logging(level=logging.INFO if args.verbose else logging.WARNING)
    orch = Orchestrator(
        workdir=args.workdir,
        settings=_settings(args),
        review=args.review,
        sinks=(StructlogSink(),) if args.json else (StructlogSink(), ProgressSink()),
    )

    async def go() -> Any:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_cancel_on_signal, orch.cancel, tg.cancel_scope)
            result = await orch.run(args.target)
            tg.cancel_scope.cancel()
            return result

    result = anyio.run(go)
    if orch.notice:
        print(orch.notice, file=sys.stderr)
    if args.json:
        from .store import result_json

        print(result_json(result).decode())
    else:
        print(render_result(result))
    return 0 if result.status == "completed" else 1


async def _cancel_on_signal(cancel: Any, scope: anyio.CancelScope) -> None:
    """Ctrl-C or SIGTERM cancels the run cleanly; the partial result is still printed and saved."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            print("cancelling: stopping every task (partial result follows)", file=sys.stderr)
            cancel()
            return


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
    from .logs import StructlogSink, configure_logging
    from .report import ProgressSink, render_result

    configure_logging(level=logging.INFO if args.verbose else logging.WARNING)
    orch = Orchestrator(
        workdir=args.workdir,
        settings=_settings(args),
        review=args.review,
        sinks=(StructlogSink(),) if args.json else (StructlogSink(), ProgressSink()),
    )

    async def go() -> Any:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_cancel_on_signal, orch.cancel, tg.cancel_scope)
            result = await orch.resume(args.run_id)
            tg.cancel_scope.cancel()
            return result

    result = anyio.run(go)
    if args.json:
        from .store import result_json

        print(result_json(result).decode())
    else:
        print(render_result(result))
    return 0 if result.status == "completed" else 1


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
    from .store import RunStore

    store = RunStore(_run_root(args.workdir))
    for row in store.list_runs():
        cost = "-" if row.cost_usd is None else f"${row.cost_usd:.4f}"
        print(f"{row.run_id}  {row.status:<9} {cost:>10}  {row.goal[:70]}")
    store.close()
    return 0


def _cmd_runs_show(args: argparse.Namespace) -> int:
    from .report import render_result
    from .store import RunStore

    store = RunStore(_run_root(args.workdir))
    try:
        print(render_result(store.load_result(args.run_id)))
    except FileNotFoundError:
        # No result yet: the run is in progress or was interrupted; its journal says how far.
        from .journal import read_state
        from .outcome import build_result

        row = store.row(args.run_id)
        run_dir = store.root / args.run_id
        if row is None and not run_dir.is_dir():
            print(f"error: no run {args.run_id} under {store.root}", file=sys.stderr)
            return 2
        status = "interrupted" if row is None or row.status == "interrupted" else "running"
        state = read_state(run_dir)
        print(render_result(build_result(state, status=status, ladder=(), run_dir=str(run_dir))))
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
