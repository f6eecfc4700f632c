"""`orchestrator` command line: run a goal or a goal script, resume a run, inspect runs and tools.

Before anything else it hides the credentials in its environment from child processes, and
everything it prints (results, errors, logs, tracebacks) goes through a redacting stream. Every
error ends as one line and an exit status (`orchestrator.cli_errors`).
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Sequence
from typing import cast

from .cli_agents import add_agents_commands
from .cli_errors import EXIT_STATUSES, primary_error, report_error
from .cli_output import RedactingStream as RedactingStream
from .cli_output import closed_output, protect_secrets
from .cli_output import redacted_output as redacted_output
from .cli_run import add_run_commands
from .cli_runs import add_runs_commands
from .cli_tools import add_tools_commands

_DEBUG_HELP = "on an error, print its traceback too (also ORCH_DEBUG=1)"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `orchestrator` script; returns the process exit code."""
    redactor = protect_secrets()
    try:
        with redacted_output(redactor):
            args = _parser().parse_args(argv)
            return _dispatch(args)
    except BrokenPipeError:  # the reader went away (`| head`): nothing left to say
        return closed_output()


def _dispatch(args: argparse.Namespace) -> int:
    """Run the command; any error it raises becomes one line and an exit status."""
    from .cli_errors import is_debug

    command = cast("Callable[[argparse.Namespace], int]", args.func)
    try:
        return command(args)
    except (Exception, KeyboardInterrupt, BaseExceptionGroup) as exc:
        if isinstance(primary_error(exc), BrokenPipeError):
            raise BrokenPipeError from exc
        return report_error(exc, debug=is_debug(bool(args.debug)))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orchestrator", description=__doc__, epilog=EXIT_STATUSES)
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    # On every command too, where users type it; SUPPRESS keeps a value given before the command.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)
    sub = parser.add_subparsers(required=True)
    command = functools.partial(sub.add_parser, parents=[common])
    add_run_commands(command)
    add_tools_commands(sub.add_parser, parents=[common])
    add_runs_commands(sub.add_parser, parents=[common])
    add_agents_commands(sub.add_parser, parents=[common])
    return parser


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
