"""`orchestrator run --plan-only` and `--approve`: the plan and its cost before anything runs."""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
from typing import TYPE_CHECKING

import anyio

from .cli_errors import EXIT_INTERRUPTED, UsageError

if TYPE_CHECKING:  # the command line imports the engine only for the command that needs it
    from .app import Orchestrator
    from .preview import OnPlan, PlanDecision, PlanPreview

PROMPT = "Execute this plan? [y/N] "
NOTHING_RAN = "no task was executed"
REFUSED = "plan refused: nothing was executed"
_YES = frozenset({"y", "yes"})


def add_plan_flags(command: argparse.ArgumentParser) -> None:
    """`--plan-only` and `--approve` (one or the other) on the `run` command."""
    group = command.add_mutually_exclusive_group()
    group.add_argument(
        "--plan-only",
        action="store_true",
        help="plan and validate the goal, print the task DAG with a cost estimate per task and "
        "in total, and exit 0 without executing any task (no run is recorded; with --json the "
        "preview is printed as JSON)",
    )
    group.add_argument(
        "--approve",
        action="store_true",
        help=f"print the same preview, then ask {PROMPT.strip()!r} on stderr: y or yes runs the "
        "plan; anything else, or the end of stdin, refuses it: nothing is executed, the run is "
        "recorded as cancelled and the exit status is 0",
    )


def script_refusal(args: argparse.Namespace) -> UsageError | None:
    """The error for `--plan-only` / `--approve` with a goal script (the script plans itself)."""
    flag = "--plan-only" if args.plan_only else "--approve" if args.approve else None
    if flag is None:
        return None
    return UsageError(
        f"{flag} needs a goal, not a script",
        fix="in a script, call Orchestrator.plan(goal) or pass Orchestrator(on_plan=...)",
    )


def plan_only(orch: Orchestrator, goal: str, *, as_json: bool) -> int:
    """Plan `goal`, print its preview and exit: 0 when a valid plan was printed.

    Ctrl-C stops the planning: 130, and nothing ran.
    """
    try:
        preview = anyio.run(functools.partial(orch.plan, goal))
    except KeyboardInterrupt:
        print(f"cancelled: {NOTHING_RAN}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if orch.notice:
        print(orch.notice, file=sys.stderr)
    if as_json:
        from pydantic import TypeAdapter

        from .preview import PlanPreview

        print(TypeAdapter(PlanPreview).dump_json(preview).decode())  # one line: stdout is JSONL
    else:
        print(preview.render())
        print(NOTHING_RAN)
    return 0


def approval(refused: list[str], *, as_json: bool) -> OnPlan:
    """The `on_plan` of `--approve`: show the preview, ask on the terminal, run only on yes.

    A refusal is noted in `refused`, so the command can exit 0 for it.
    """
    from .preview import Accept, Refuse

    out = sys.stderr if as_json else sys.stdout

    async def ask(preview: PlanPreview) -> PlanDecision:
        print(preview.render(), file=out, flush=True)
        print(PROMPT, end="", file=sys.stderr, flush=True)
        answer = (await read_line()).strip()
        if answer.casefold() in _YES:
            return Accept()
        refused.append(answer)
        said = f"answered {answer!r}" if answer else "no answer"
        return Refuse(f"not approved at the prompt ({said})")

    return ask


async def read_line() -> str:
    """One line of stdin ("" at its end), waiting for a terminal or a pipe without blocking the
    event loop (so a stop signal still cancels the run)."""
    stdin = sys.stdin
    if stdin is None:  # pyright: ignore[reportUnnecessaryComparison] - None when there is none
        return ""
    # A regular file or /dev/null cannot be waited on, and never blocks: read it at once.
    with contextlib.suppress(OSError, ValueError):
        await anyio.wait_readable(stdin.fileno())
    return stdin.readline()
