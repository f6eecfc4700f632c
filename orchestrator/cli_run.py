"""`orchestrator run` and `orchestrator resume`: one front door for goals and goal scripts.

Both kinds of target get the same checks before anything starts (an empty goal, a missing
workdir, script or run, bad model ids), the same one-line errors and exit statuses, and the same
Ctrl-C: the work is cancelled and its partial result printed.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .cli_errors import EXIT_FAILED, EXIT_STATUSES, UsageError, primary_error
from .cli_plan import REFUSED, add_plan_flags, approval, plan_only
from .cli_progress import progress_sinks
from .cli_signals import SIGNALS_HELP, Outcome, run_with_signals
from .errors import RunAbortedError
from .generation import Generation
from .settings import Settings

if TYPE_CHECKING:
    from .app import Orchestrator
    from .models import RunResult

TARGET_HELP = (
    "a goal in quotes, or a goal script: an existing .py file with `async def main()`. A "
    "target that names an existing directory or another file, or that looks like a script "
    "path (ends in .py, no spaces) but does not exist, is refused: to run such words as a "
    "goal, quote a sentence"
)
SCRIPT_HELP = (
    "A goal script runs in this process with the same checks, errors and Ctrl-C (the partial "
    "result of each run it started is printed). --base-url, --backend, --api-style, --models, "
    "--server, --gen, --max-parallel, --record and --replay reach it as OPENAI_BASE_URL and "
    "ORCH_* variables (read by an Orchestrator built without a client or settings), --workdir is "
    "the directory it runs in, -v logs its events; --json, --review, --plan-only and --approve "
    "are refused (the script decides those)."
)
_MODELS_EXAMPLE = "e.g. --models gpt-5.4-mini,gpt-5.4,gpt-5.5"


@dataclass(frozen=True, slots=True)
class Goal:
    """A goal, in words, for the planner."""

    text: str


@dataclass(frozen=True, slots=True)
class Script:
    """A goal script: a .py file whose `async def main()` runs goals itself."""

    path: Path


def add_run_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    """`run` and `resume`, with the options they share (`command` is the subparsers' add_parser)."""
    run = command(
        "run",
        help="run a goal, or a goal script (an existing .py file)",
        epilog=f"{SCRIPT_HELP} {SIGNALS_HELP} {EXIT_STATUSES}",
    )
    run.add_argument("target", help=TARGET_HELP)
    _backend_arguments(run, workdir_help="the workspace executors may touch (must exist)")
    add_plan_flags(run)
    run.set_defaults(func=cmd_run)
    resume = command(
        "resume",
        help="continue an interrupted or cancelled run from its journal",
        epilog=f"{SIGNALS_HELP} {EXIT_STATUSES}",
    )
    resume.add_argument("run_id", help="as `orchestrator runs list` shows it")
    _backend_arguments(resume, workdir_help="where the run root is (as for `run`)")
    resume.set_defaults(func=cmd_resume)


def _backend_arguments(command: argparse.ArgumentParser, *, workdir_help: str) -> None:
    """The options `run` and `resume` share: where, which backend and models, how to print."""
    command.add_argument("--workdir", default=".", help=workdir_help)
    command.add_argument("--base-url", help="an OpenAI-compatible server (vLLM, Ollama, llama.cpp)")
    command.add_argument("--backend", choices=["auto", "openai", "compatible", "local"])
    command.add_argument("--api-style", choices=["responses", "chat"])
    command.add_argument(
        "--models",
        help=f"tier ladder as model ids, bottom first, comma-separated ({_MODELS_EXAMPLE})",
    )
    command.add_argument("--max-parallel", type=_positive, help="tasks running at once (≥ 1)")
    command.add_argument(
        "--server",
        choices=["llama.cpp", "vllm", "ollama"],
        help="what the --base-url server is, for its known capabilities (default: an unknown "
        "OpenAI-compatible server)",
    )
    command.add_argument(
        "--gen",
        action="append",
        metavar="[SCOPE.]OPTION=VALUE",
        help="generation options, repeatable, comma-separated: temperature, max_output_tokens, "
        "reasoning_effort, for every call or a role, tier or ROLE@TIER (e.g. --gen "
        "worker.max_output_tokens=1024 --gen frontier.reasoning_effort=high); over ORCH_GEN",
    )
    command.add_argument(
        "--record", metavar="FILE", help="save every model call of the run to this cassette"
    )
    command.add_argument(
        "--replay", metavar="FILE", help="answer every model call from a --record cassette"
    )
    command.add_argument(
        "--review", choices=["all", "none"], help="review every finished task (default) or none"
    )
    command.add_argument(
        "--json",
        action="store_true",
        help="JSON lines on stdout: the run's events, then its result as the last line",
    )
    command.add_argument(
        "-v", "--verbose", action="store_true", help="log every event (structlog) to stderr"
    )


def _positive(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number ≥ 1, not {raw!r}")
    return value


def cmd_run(args: argparse.Namespace) -> int:
    """Run a goal, or a goal script, after the checks both share."""
    target = classify(args.target)
    settings = checked_settings(args)
    workdir = checked_workdir(args.workdir)
    if isinstance(target, Script):
        from .cli_script import run_script

        return run_script(target.path, args, settings=settings, workdir=workdir)
    refused: list[str] = []
    orch = _orchestrator(args, settings, workdir, refused)
    if args.plan_only:
        return plan_only(orch, target.text, as_json=args.json)
    outcome = run_with_signals(functools.partial(orch.run, target.text), orch.cancel)
    code = finish(orch, outcome, as_json=args.json)
    if refused and code == EXIT_FAILED:  # refusing is an answer, not a failure (see `--approve`)
        print(REFUSED, file=sys.stderr if args.json else sys.stdout)
        return 0
    return code


def cmd_resume(args: argparse.Namespace) -> int:
    """Continue a run from its journal; finished tasks are kept, in-flight ones run again."""
    from .journal import JOURNAL_FILE

    settings = checked_settings(args)
    workdir = checked_workdir(args.workdir)
    root = settings.run_root if settings.run_root.is_absolute() else workdir / settings.run_root
    if not (root / args.run_id / JOURNAL_FILE).is_file():  # before a backend is started for it
        raise UsageError(
            f"no run {args.run_id} to resume under {root}",
            fix="see `orchestrator runs list` (with the same --workdir)",
        )
    orch = _orchestrator(args, settings, workdir, [])
    outcome = run_with_signals(functools.partial(orch.resume, args.run_id), orch.cancel)
    return finish(orch, outcome, as_json=args.json)


def classify(target: str) -> Goal | Script:
    """A goal or a script, by the rules of `TARGET_HELP`; raises `UsageError` for neither."""
    text = target.strip()
    if not text:
        raise UsageError(
            "empty goal", fix='give the goal in quotes: orchestrator run "Fix the failing test"'
        )
    path = Path(text)
    try:
        is_file, is_dir = path.is_file(), path.is_dir()
    except OSError:  # e.g. a sentence longer than a file name may be
        is_file = is_dir = False
    if is_file and path.suffix == ".py":
        return Script(path)
    if is_dir:
        raise UsageError(
            f"{text} is a directory, not a goal",
            fix="give a goal in quotes (and the directory as --workdir), or a .py goal script",
        )
    if is_file:
        raise UsageError(
            f"{text} is a file, not a goal or a .py goal script",
            fix=f'give a goal in quotes, e.g. orchestrator run "Summarise {text}"',
        )
    if text.endswith(".py") and not any(c.isspace() for c in text):
        raise UsageError(
            f"no such script: {text}", fix="check the path; to run it as a goal, quote a sentence"
        )
    return Goal(text)


def checked_settings(args: argparse.Namespace) -> Settings:
    """The settings of the flags over the environment, with the model ids checked."""
    models = parse_models(args.models, source="--models") if args.models is not None else None
    settings = Settings.from_env(
        base_url=args.base_url,
        backend=args.backend,
        api_style=args.api_style,
        models=models,
        max_parallel=args.max_parallel,
        server=args.server,
        generation=None if args.gen is None else Generation.parse(args.gen, source="--gen"),
        record=args.record,
        replay=args.replay,
    )
    if settings.models is not None and models is None:  # from ORCH_MODELS
        parse_models(",".join(settings.models), source="ORCH_MODELS")
    from .backends import tier_names

    settings.generation.check_tiers(tier_names(settings))  # a typo fails before anything runs
    return _checked_cassettes(settings)


def _checked_cassettes(settings: Settings) -> Settings:
    """Record or replay, not both; a replay's cassette exists. Paths made absolute (a script
    runs in its workdir)."""
    record, replay = settings.record, settings.replay
    if record is not None and replay is not None:
        raise UsageError(
            "--record and --replay together (or ORCH_RECORD and ORCH_REPLAY)",
            fix="record a run with --record FILE, then replay it in another with --replay FILE",
        )
    if replay is not None and not replay.is_file():
        raise UsageError(f"no such cassette: {replay}", fix="give a file that --record wrote")
    paths = {"record": record, "replay": replay}
    return settings.model_copy(update={k: p.resolve() for k, p in paths.items() if p is not None})


def parse_models(raw: str, *, source: str) -> tuple[str, ...]:
    """Model ids from a comma-separated list; none may be empty or hold spaces."""
    ids = tuple(part.strip() for part in raw.split(","))
    if any(not i for i in ids):
        problem = "an empty model id"
    elif any(any(c.isspace() for c in i) for i in ids):
        problem = "a model id with a space in it"
    else:
        return ids
    raise UsageError(
        f"bad {source} {raw!r}: {problem}",
        fix=f"give model ids bottom tier first, comma-separated ({_MODELS_EXAMPLE})",
    )


def checked_workdir(raw: str) -> Path:
    """The workdir, which must exist: a run never creates it (a typo would run somewhere new)."""
    path = Path(raw)
    if path.is_dir():
        return path
    what = f"workdir is not a directory: {raw}" if path.exists() else f"no such workdir: {raw}"
    raise UsageError(what, fix="create it first, or pass an existing directory to --workdir")


def _orchestrator(
    args: argparse.Namespace, settings: Settings, workdir: Path, refused: list[str]
) -> Orchestrator:
    """The orchestrator of a goal or a resume: the flags' backend, review and output."""
    from .app import Orchestrator
    from .logs import configure_logging

    configure_logging(level=logging.INFO if args.verbose else logging.WARNING)
    on_plan = getattr(args, "approve", False)
    return Orchestrator(
        workdir=workdir,
        settings=settings,
        review=args.review or "all",
        sinks=progress_sinks(as_json=args.json),
        on_plan=approval(refused, as_json=args.json) if on_plan else None,
    )


def finish(orch: Orchestrator, outcome: Outcome[RunResult], *, as_json: bool) -> int:
    """Print the backend's notice and the (partial) result; return the exit status.

    An error is raised again for the command line to report, after the partial result it
    carries (`RunAbortedError`) is printed.
    """
    if orch.notice:
        print(orch.notice, file=sys.stderr)
    if outcome.error is not None:
        main = primary_error(outcome.error)
        if isinstance(main, RunAbortedError):
            print_result(main.result, as_json=as_json)
        raise outcome.error
    result = outcome.value
    assert result is not None  # no error: the run returned its result
    print_result(result, as_json=as_json)
    if result.status == "completed":
        return 0
    return outcome.signal_status() or EXIT_FAILED


def print_result(result: RunResult, *, as_json: bool) -> None:
    """A run's result on stdout: as text, or as its result.json on one line (with `--json`,
    stdout is JSON lines: the run's events, then its result last)."""
    from .jsonl import result_line
    from .report import render_result

    if as_json:
        print(result_line(result))
    else:
        print(render_result(result))
