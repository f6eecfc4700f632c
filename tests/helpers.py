"""Builders for scripted replies in engine tests."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

from orchestrator.agents.planner import DagPlanner, PlanOut
from orchestrator.agents.reviewer import BatchReviewer, ReviewOut, VerdictOut
from orchestrator.agents.schemas import TaskOut
from orchestrator.agents.synthesizer import AnswerSynthesizer
from orchestrator.agents.worker import ExecutorWorker, LeafReportOut, OutputItem
from orchestrator.events import EventSink
from orchestrator.llm import ModelReply, ModelRequest
from orchestrator.models import Limits, TierSpec
from orchestrator.retry import RetryPolicy
from orchestrator.run import Engine, EngineConfig
from orchestrator.testing import ScriptedModel, tool_call
from orchestrator.toolkit import CheckRunner, Tool

FAST_RETRY = RetryPolicy(base_delay_s=0.001, max_delay_s=0.01)
"""Transport retries in engine tests wait milliseconds, not the production backoff."""

LADDER = (
    TierSpec(name="mini", model="gpt-5.4-mini"),
    TierSpec(name="base", model="gpt-5.4"),
    TierSpec(name="frontier", model="gpt-5.5"),
)


def task(
    tid: str,
    *deps: str,
    tools: Iterable[str] = (),
    check: str | None = None,
    tier: str | None = None,
) -> TaskOut:
    return TaskOut(
        id=tid,
        instruction=f"do {tid}",
        deps=list(deps),
        tools=list(tools),
        produces=f"{tid} result",
        check_command=check,
        tier=tier,
        est_seconds=None,
    )


def plan(*tasks: TaskOut) -> PlanOut:
    return PlanOut(rationale="split", tasks=list(tasks))


def leaf(
    summary: str = "ok", status: Literal["done", "failed", "ambiguous"] = "done", **outputs: str
) -> LeafReportOut:
    return LeafReportOut(
        status=status,
        summary=summary,
        outputs=[OutputItem(name=k, value=v) for k, v in outputs.items()],
        confidence=0.9,
    )


def verdict(
    task_id: str,
    kind: Literal["accept", "retry", "escalate", "replan"],
    feedback: str = "",
    new_tasks: list[TaskOut] | None = None,
) -> VerdictOut:
    return VerdictOut(
        task_id=task_id,
        verdict=kind,
        feedback=feedback,
        new_tasks=new_tasks,
    )


def accept_all(request: ModelRequest) -> ModelReply:
    """A standing reviewer that accepts every task in every batch, by name."""
    text = "\n".join(m.content for m in request.messages if m.role == "user")
    ids = re.findall(r"^### (\S+) \(tier ", text, flags=re.MULTILINE)
    verdicts = [verdict(tid, "accept") for tid in ids]
    return ModelReply(text=ReviewOut(verdicts=verdicts).model_dump_json())


def answer(request: ModelRequest) -> ModelReply:
    return ModelReply(text="final answer")


def tool_then_leaf(
    tool: str, args: dict[str, object] | None = None, summary: str = "ok"
) -> Callable[[ModelRequest], ModelReply]:
    """A worker responder: call `tool` on the first turn, report after a tool result arrives."""

    def respond(request: ModelRequest) -> ModelReply:
        if any(m.role == "tool" for m in request.messages):
            return ModelReply(text=leaf(summary).model_dump_json())
        return tool_call(tool, args or {}, call_id=f"call_{request.task_id}")

    return respond


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
