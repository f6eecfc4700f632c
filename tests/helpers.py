"""Builders for scripted replies in engine tests."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

from orchestrator.agents.planner import DagPlanner
from orchestrator.agents.reviewer import BatchReviewer
from orchestrator.agents.synthesizer import AnswerSynthesizer
from orchestrator.agents.worker import ExecutorWorker
from orchestrator.events import EventSink
from orchestrator.llm import ModelReply, ModelRequest
from orchestrator.models import Limits, TierSpec
from orchestrator.retry import RetryPolicy
from orchestrator.run import Engine, EngineConfig
from orchestrator.testing import ScriptedModel, leaf_report, plan_reply, tool_then_report
from orchestrator.testing import accept_all as _accept_all
from orchestrator.testing import task as task
from orchestrator.testing import verdict as verdict
from orchestrator.toolkit import CheckRunner, Tool

FAST_RETRY = RetryPolicy(base_delay_s=0.001, max_delay_s=0.01)
"""Transport retries in engine tests wait milliseconds, not the production backoff."""

LADDER = (
    TierSpec(name="mini", model="gpt-5.4-mini"),
    TierSpec(name="base", model="gpt-5.4"),
    TierSpec(name="frontier", model="gpt-5.5"),
)


# The builders are public (orchestrator.testing); these names stay for the existing tests.
plan = plan_reply
leaf = leaf_report
accept_all = _accept_all()
"""A standing reviewer that accepts every task in every batch, by name."""


def answer(request: ModelRequest) -> ModelReply:
    return ModelReply(text="final answer")


def tool_then_leaf(
    tool: str, args: dict[str, object] | None = None, summary: str = "ok"
) -> Callable[[ModelRequest], ModelReply]:
    """A worker responder: call `tool` on the first turn, report after a tool result arrives."""
    return tool_then_report(tool, args, summary=summary)


def engine(
    model: ScriptedModel,
    tmp_path: Path,
    *,
    tools: Iterable[Tool] = (),
    sinks: Iterable[EventSink] = (),
    limits: Limits | None = None,
    check_runner: CheckRunner | None = None,
    review: Literal["all", "none"] = "all",
    stream_plan: bool = True,
    latency_history: bool = True,
) -> Engine:
    return Engine(
        model,
        planner=DagPlanner(),
        worker=ExecutorWorker(),
        reviewer=BatchReviewer(),
        synthesizer=AnswerSynthesizer(),
        tools=tuple(tools),
        config=EngineConfig(
            ladder=LADDER,
            limits=limits or Limits(max_parallel=8),
            run_root=tmp_path / "runs",
            review=review,
            stream_plan=stream_plan,
            latency_history=latency_history,
            retry=FAST_RETRY,
        ),  # type: ignore[arg-type]
        sinks=tuple(sinks),
        check_runner=check_runner,
    )


def fixture_pytest_env() -> dict[str, str]:
    """This environment for our own pytest run on a fixture repository: its plugins off, and
    without our switches (CI passes `--cov` in PYTEST_ADDOPTS, for a plugin that run lacks)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    return env | {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
