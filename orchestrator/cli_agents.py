"""`orchestrator agents list` and `orchestrator agent NAME [ARGS]`: the installed agents, run
with the backend flags, errors, exit statuses and Ctrl-C of `orchestrator run`.

`agent_main(agent)` is the same command line for `python -m <an agent's module>`.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from .agent_kit import Agent, AgentOutcome, load_agents
from .cli_errors import (
    EXIT_FAILED,
    EXIT_STATUSES,
    UsageError,
    is_debug,
    primary_error,
    report_error,
)
from .cli_output import closed_output, protect_secrets, redacted_output
from .cli_progress import progress_sinks
from .cli_run import (
    _backend_arguments,  # pyright: ignore[reportPrivateUsage] - run's flags, shared
    checked_settings,
    checked_workdir,
    print_result,
)
from .cli_signals import SIGNALS_HELP, Outcome, run_with_signals
from .errors import RunAbortedError

_AGENT_HELP = (
    "The agent's own arguments and the flags of `run` (--workdir, --models, --base-url, --json, "
    "...) follow NAME in any order; `orchestrator agent NAME --help` lists both. Exit status 0 "
    "means the run completed and every final check (e.g. the whole test suite) passed."
)


def add_agents_commands(
    command: Callable[..., argparse.ArgumentParser], *, parents: list[argparse.ArgumentParser]
) -> None:
    """`agents list` and `agent NAME` (`command` is the subparsers' add_parser)."""
    agents = command("agents", help="example and installed agents")
    agents_sub = agents.add_subparsers(required=True)
    listing = agents_sub.add_parser("list", help="one line per agent", parents=parents)
    listing.set_defaults(func=cmd_agents_list)
    agent = command(
        "agent",
        help="run an agent: orchestrator agent NAME [ARGS] (see `orchestrator agents list`)",
        parents=parents,
        epilog=f"{_AGENT_HELP} {SIGNALS_HELP} {EXIT_STATUSES}",
    )
    agent.add_argument("name", help="as `orchestrator agents list` shows it")
    agent.add_argument("rest", nargs=argparse.REMAINDER, help="the agent's arguments and flags")
    agent.set_defaults(func=cmd_agent)


def cmd_agents_list(args: argparse.Namespace) -> int:
    """Every installed agent with its summary; a broken plugin is named on stderr, not fatal."""
    loaded = load_agents()
    width = max((len(a.name) for a in loaded.agents), default=0)
    for agent in loaded.agents:
        print(f"{agent.name:<{width}}  {agent.summary}")
    for failure in loaded.errors:
        print(f"warning: agent skipped: {failure.entry_point}: {failure.error}", file=sys.stderr)
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    """Run the named agent; an unknown name is a usage error listing the known ones."""
    loaded = load_agents()
    found = {a.name: a for a in loaded.agents}
    agent = found.get(args.name)
    if agent is None:
        known = ", ".join(found) or "none installed"
        raise UsageError(
            f"no agent {args.name!r}", fix=f"known agents: {known} (orchestrator agents list)"
        )
    return run_agent_command(agent, args.rest, args)


def agent_main(agent: Agent, argv: Sequence[str] | None = None) -> int:
    """`python -m` an agent's module: its command line, as `orchestrator agent NAME` runs it."""
    top = argparse.Namespace(debug=False)
    redactor = protect_secrets()
    try:
        with redacted_output(redactor):
            try:
                return run_agent_command(agent, sys.argv[1:] if argv is None else argv, top)
            except (Exception, KeyboardInterrupt, BaseExceptionGroup) as exc:
                if isinstance(primary_error(exc), BrokenPipeError):
                    raise BrokenPipeError from exc
                return report_error(exc, debug=is_debug(bool(top.debug)))
    except BrokenPipeError:  # the reader went away (`| head`): nothing left to say
        return closed_output()


def run_agent_command(agent: Agent, argv: Sequence[str], top: argparse.Namespace) -> int:
    """Parse the agent's arguments with the backend flags, run it, print its report.

    `top` is the command's namespace: a `--debug` among the agent's arguments is set there,
    where the error reporter looks.
    """
    from .agent_run import run_agent
    from .cancel import CancelToken
    from .logs import configure_logging

    args = agent_parser(agent).parse_args(list(argv))
    top.debug = bool(getattr(top, "debug", False)) or args.debug
    settings = checked_settings(args)
    workdir = checked_workdir(args.workdir)
    configure_logging(level=logging.INFO if args.verbose else logging.WARNING)
    extra = {} if args.review is None else {"review": args.review}
    stop = CancelToken()
    go = functools.partial(
        run_agent,
        agent,
        args,
        workdir=workdir,
        cancel=stop,
        settings=settings,
        sinks=progress_sinks(as_json=args.json),
        **extra,
    )
    return finish_agent(run_with_signals(go, stop.cancel), as_json=args.json)


class _AgentParser(argparse.ArgumentParser):
    """Bad arguments become a one-line `UsageError`, like every other refused command line."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, fix=f"see `{self.prog} --help`")


def agent_parser(agent: Agent) -> argparse.ArgumentParser:
    """The agent's own arguments, then the backend and output flags of `run`.

    Raises:
        UsageError: the agent defines an argument that clashes with those flags.
    """
    parser = _AgentParser(
        prog=f"orchestrator agent {agent.name}",
        description=agent.summary,
        epilog=f"{SIGNALS_HELP} {EXIT_STATUSES}",
    )
    parser.add_argument("--debug", action="store_true", help="on an error, print its traceback")
    try:
        agent.arguments(parser)
        _backend_arguments(parser, workdir_help="the repository the agent works on (must exist)")
    except argparse.ArgumentError as exc:
        raise UsageError(
            f"agent {agent.name} is broken: {exc}",
            fix="report it to the agent's author (its arguments clash with the run flags)",
        ) from exc
    return parser


def finish_agent(outcome: Outcome[AgentOutcome], *, as_json: bool) -> int:
    """Print the notice, the report (the result line too with --json); return the exit status.

    0 when the run completed and every final check passed; 1 otherwise; 128+N after signal N
    (the report of what was done is printed first). An error is raised again for the command
    line to report, after the partial result it carries (`RunAbortedError`) is printed.
    """
    if outcome.error is not None:
        main = primary_error(outcome.error)
        if isinstance(main, RunAbortedError):
            print_result(main.result, as_json=as_json)
        raise outcome.error
    done = outcome.value
    assert done is not None  # no error: run_agent returned its outcome
    if done.notice:
        print(done.notice, file=sys.stderr)
    if as_json:  # stdout stays JSON lines, the result last (docs/jsonl.md)
        from .jsonl import result_line

        print(done.report, file=sys.stderr)
        print(result_line(done.result))
    else:
        print(done.report)
    if done.ok:
        return 0
    return outcome.signal_status() or EXIT_FAILED
