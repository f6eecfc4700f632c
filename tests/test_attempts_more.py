"""What an attempt hands on (`attempts.py`): a dependency's outputs cut to the budget, and the
value each kind of model error becomes for the escalation policy."""

from __future__ import annotations

import pytest

from orchestrator.attempts import crash_of, dep_output
from orchestrator.errors import (
    ModelAPIError,
    ModelBehaviorError,
    ModelError,
    ModelOutageError,
    ModelTimeoutError,
)
from orchestrator.models import Succeeded, TaskId


def _succeeded(summary: str, **outputs: str) -> Succeeded:
    return Succeeded(task_id=TaskId("a"), summary=summary, outputs=outputs, tier="mini", attempts=1)


def test_dep_output_within_the_budget_is_whole() -> None:
    out = dep_output(_succeeded("sum", x="1", y="2"), 100)
    assert (out.task_id, out.summary, dict(out.outputs), out.truncated) == (
        "a",
        "sum",
        {"x": "1", "y": "2"},
        False,
    )


def test_dep_output_stops_at_the_output_that_no_longer_fits() -> None:
    """The summary takes at most a quarter; outputs fill the rest in order, and once the room is
    gone the remaining ones are left out and the output says it was cut."""
    out = dep_output(_succeeded("s" * 10, first="a" * 12, second="b" * 5, third="c"), 20)
    assert out.summary == "s" * 5
    assert dict(out.outputs) == {"first": "a" * 10}
    assert out.truncated


@pytest.mark.parametrize(
    ("exc", "trigger", "retryable"),
    [
        (ModelOutageError("down", status_code=None, outage_s=60.0), "outage", False),
        (ModelTimeoutError("slow", timeout_s=1.0), "timeout", True),
        (ModelBehaviorError("not json"), "invalid_output", False),
    ],
    ids=["outage", "timeout", "behavior"],
)
def test_crash_of_names_the_trigger_the_policy_reads(
    exc: ModelError, trigger: str, retryable: bool
) -> None:
    crash = crash_of(exc)
    assert crash.trigger == trigger
    assert (crash.error.type, crash.error.message) == (type(exc).__name__, str(exc))
    assert crash.error.retryable is retryable


def test_crash_of_an_api_error_is_retried_only_when_it_is_retryable() -> None:
    fatal = crash_of(ModelAPIError("bad", status_code=400, retryable=False))
    assert (fatal.trigger, fatal.error.type, fatal.error.retryable) == (
        "fatal_error",
        "ModelAPIError",
        False,
    )
    again = crash_of(ModelAPIError("busy", status_code=503, retryable=True))
    assert (again.trigger, again.error.retryable) == ("api_error", True)
