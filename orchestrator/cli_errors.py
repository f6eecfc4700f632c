"""Every error of a command as one line, `error: <what failed> — <what to do>`, and its exit status.

Tracebacks are printed only with `--debug` (or ORCH_DEBUG=1): a user sees what to do, not where
in the code it was noticed. The exit statuses are listed in `EXIT_STATUSES` (the `--help` epilog).
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

from .errors import (
    BudgetExceededError,
    ConfigError,
    JournalError,
    LocalModelError,
    ModelAPIError,
    ModelBehaviorError,
    ModelError,
    ModelOutageError,
    ModelTimeoutError,
    OrchestratorError,
    PlanValidationError,
    RunAbortedError,
    WorkspaceError,
)
from .settings import process_environment

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_STATUSES = (
    "exit status: 0 the run completed (or its plan was refused at --approve, or the command "
    "succeeded); 1 the run did not complete (partial, failed, no valid plan, stopped by an "
    "error: the partial result is printed); 2 usage or configuration error (bad flag, empty "
    "goal, missing workdir, script or run); 128+N a signal stopped it (130 Ctrl-C, 143 "
    "SIGTERM; the partial result is printed); 141 stdout was closed early (e.g. `| head`). "
    "Errors are one line on stderr; --debug (or ORCH_DEBUG=1) adds the traceback."
)
_DEBUG_HINT = "run with --debug for the traceback"
_TRUE = frozenset({"1", "true", "yes", "on"})


class UsageError(ConfigError):
    """A command line refused before anything starts: a bad flag, an empty goal, a missing path."""

    def __init__(self, what: str, *, fix: str) -> None:
        super().__init__(what)
        self.fix = fix
        """What to type instead."""


class ScriptError(OrchestratorError):
    """A goal script raised an error of its own (ours are reported as they are)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    """What one error means to a user."""

    what: str
    """What failed."""
    fix: str
    """What to do about it."""
    code: int
    """The exit status."""

    @property
    def line(self) -> str:
        """The one line printed for it."""
        text = f"error: {self.what} — {self.fix}" if self.fix else f"error: {self.what}"
        return " ".join(text.split())  # messages may hold newlines (pydantic's do): one line


def is_debug(requested: bool) -> bool:
    """Whether tracebacks are wanted: `--debug`, or ORCH_DEBUG set to a true value."""
    return requested or process_environment().get("ORCH_DEBUG", "").lower() in _TRUE


def report_error(exc: BaseException, *, debug: bool) -> int:
    """Print `exc` as one line on stderr (after its traceback with `debug`); return its status."""
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    failure = explain(exc)
    print(failure.line, file=sys.stderr)
    return failure.code


def explain(exc: BaseException) -> Failure:
    """The failure `exc` stands for; a task group's error group is explained by its main error."""
    errors = list(_leaves(exc))
    main = _main_error(errors) if errors else exc
    failure = _explain_one(main)
    others = sum(1 for e in errors if isinstance(e, Exception)) - 1
    if others > 0:
        what = f"{failure.what} (and {others} more error{'s' if others > 1 else ''})"
        return Failure(what=what, fix=failure.fix, code=failure.code)
    return failure


def primary_error(exc: BaseException) -> BaseException:
    """The error a (possibly nested) error group is reported as; any other exception itself."""
    errors = list(_leaves(exc))
    return _main_error(errors) if errors else exc


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in cast("BaseExceptionGroup[BaseException]", exc).exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _main_error(errors: list[BaseException]) -> BaseException:
    """Ours first (it says what to do), then any other error, then what is left (an interrupt)."""
    for wanted in (OrchestratorError, Exception):
        for error in errors:
            if isinstance(error, wanted):
                return error
    return errors[0]


_BY_TYPE: tuple[tuple[type[OrchestratorError], str | None, str, int], ...] = (
    (JournalError, "", "see `orchestrator runs list` for the runs under this workdir", EXIT_USAGE),
    (
        LocalModelError,
        "embedded model: ",
        "install it (pip install 'orchestrator-agents[local]'), or use a server: --base-url URL "
        "or OPENAI_API_KEY",
        EXIT_USAGE,
    ),
    (ConfigError, "", "fix what it names (`orchestrator run --help` lists the flags)", EXIT_USAGE),
    (BudgetExceededError, "budget: ", "raise the budget (Limits) or give a smaller goal", 1),
    (WorkspaceError, "workspace: ", "check that git works in the workdir", EXIT_FAILED),
    (ScriptError, "", _DEBUG_HINT, EXIT_FAILED),
    (OrchestratorError, None, _DEBUG_HINT, EXIT_FAILED),
)
"""(type, prefix, what to do, exit status) of the errors that need no more than their message
(a None prefix: the type's name); the first that matches wins, so subclasses come first."""


def _explain_one(exc: BaseException) -> Failure:
    if isinstance(exc, UsageError):
        return Failure(what=str(exc), fix=exc.fix, code=EXIT_USAGE)
    if isinstance(exc, PlanValidationError):
        ids = f" (tasks: {', '.join(exc.task_ids)})" if exc.task_ids else ""
        fix = "rephrase the goal, or plan with a stronger top model (--models)"
        text = str(exc) if str(exc).startswith("no valid plan") else f"no valid plan: {exc}"
        return Failure(what=f"{text}{ids}", fix=fix, code=EXIT_FAILED)
    if isinstance(exc, RunAbortedError):
        return _aborted(exc)
    if isinstance(exc, ModelError):
        return Failure(what=named(exc), fix=model_fix(exc), code=EXIT_FAILED)
    if isinstance(exc, KeyboardInterrupt):
        return Failure(what="interrupted", fix="", code=EXIT_INTERRUPTED)
    for kind, prefix, fix, code in _BY_TYPE:
        if isinstance(exc, kind):
            what = named(exc) if prefix is None else f"{prefix}{exc}"
            return Failure(what=what, fix=fix, code=code)
    fix = f"{_DEBUG_HINT} (this is a bug: please report it)"
    return Failure(what=f"unexpected {named(exc)}", fix=fix, code=EXIT_FAILED)


def _aborted(exc: RunAbortedError) -> Failure:
    run_id = exc.result.run_id
    cause = exc.__cause__
    what = f"run {run_id} stopped by an error: {named(cause) if cause else exc}"
    first = model_fix(cause) if isinstance(cause, ModelError) else _DEBUG_HINT
    fix = f"{first}; its partial result is printed above (orchestrator runs show {run_id})"
    return Failure(what=what, fix=fix, code=EXIT_FAILED)


def model_fix(exc: ModelError) -> str:
    """What to check when the model API failed this way."""
    if isinstance(exc, ModelOutageError) or (
        isinstance(exc, ModelAPIError) and exc.status_code is None
    ):
        return "check that the model server (--base-url) is up and reachable"
    if isinstance(exc, ModelAPIError) and exc.status_code in (401, 403):
        return "check the API key (OPENAI_API_KEY) for this server"
    if isinstance(exc, ModelAPIError) and exc.status_code == 404:
        return "check the model ids (--models) and the server (--base-url)"
    if isinstance(exc, ModelTimeoutError):
        return "the server is slow: raise ORCH_REQUEST_TIMEOUT_S, or use a faster model"
    if isinstance(exc, ModelBehaviorError):
        return "the model did not answer in the requested shape: try a stronger model (--models)"
    return "check the model server, the API key and the model ids (--models)"


def named(exc: BaseException) -> str:
    """`Type: message`, or the type alone when the message is empty."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
