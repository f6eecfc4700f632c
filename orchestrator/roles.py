"""The role seams: `Planner`, `Worker`, `Reviewer`, `Synthesizer`, one async method each.

Role implementations live in agents/ and receive the run's instrumented `ModelClient` per call, so
accounting, budgets and events stay in the engine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from .llm import ModelClient, ToolDefinition
from .models import Plan, RunId, TaskId, TaskSpec, TierSpec
from .toolkit import ApprovalCallback, EffectLog, Tool


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanRequest:
    """What the planner sees: the goal, the tool catalog, and why its last plan was rejected."""

    goal: str
    tools: tuple[ToolDefinition, ...]
    tiers: tuple[str, ...]
    model: str
    context: str = ""
    """Extra facts about the workspace (e.g. a file listing) the app chose to give."""
    rejected: Plan | None = None
    error: str | None = None
    """The validation error of `rejected`, to repair."""


class Planner(Protocol):
    async def plan(self, request: PlanRequest, client: ModelClient) -> Plan:
        """Decompose the goal into tasks (raises ModelError on a failed or malformed reply)."""
        ...


@runtime_checkable
class StreamingPlanner(Planner, Protocol):
    def plan_stream(
        self, request: PlanRequest, client: ModelClient
    ) -> AsyncIterator[TaskSpec | Plan]:
        """Yield each task the moment it is written, then the whole plan."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class DepOutput:
    """A dependency's result as a dependent sees it: typed and bounded."""

    task_id: TaskId
    summary: str
    outputs: Mapping[str, str]
    truncated: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkRequest:
    """One executor attempt at one task."""

    run_id: RunId
    goal: str
    task: TaskSpec
    tier: TierSpec
    attempt: int
    inputs: tuple[DepOutput, ...]
    feedback: tuple[str, ...]
    """Reviewer feedback and summaries of failed earlier attempts, oldest first."""
    tools: tuple[Tool, ...]
    workdir: Path
    run_dir: Path
    max_turns: int
    approve: ApprovalCallback | None = None
    effects: EffectLog | None = None
    """The run's journal of side effects (tools that write record there, write-ahead)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LeafReport:
    """The executor's structured answer for its task."""

    status: Literal["done", "failed", "ambiguous"]
    summary: str
    outputs: Mapping[str, str] = field(default_factory=lambda: {})
    confidence: float | None = None
    turns: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptError:
    """The attempt ended without a usable report."""

    trigger: Literal["turn_limit", "invalid_output"]
    detail: str
    turns: int = 0


WorkOutcome = LeafReport | AttemptError


class Worker(Protocol):
    async def work(self, request: WorkRequest, client: ModelClient) -> WorkOutcome:
        """Run the model ↔ tools loop for one task until it reports or runs out of turns."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewItem:
    task: TaskSpec
    report: LeafReport
    tier: str
    attempt: int
    check_output: str | None = None
    """Output of the acceptance check, when the task has one and it passed."""
    duration_s: float = 0.0
    """Wall time of the attempt that wrote the report (latency history learns from it)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewRequest:
    goal: str
    plan: Plan
    items: tuple[ReviewItem, ...]
    model: str
    tools: tuple[ToolDefinition, ...] = ()
    """The tool catalog, so replacement tasks name real tools."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Accept:
    kind: Literal["accept"] = "accept"
    task_id: TaskId
    feedback: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryTask:
    kind: Literal["retry"] = "retry"
    task_id: TaskId
    feedback: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EscalateTask:
    kind: Literal["escalate"] = "escalate"
    task_id: TaskId
    feedback: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplanTask:
    """Replace the task by new tasks (or, with `keep=True`, keep it and add tasks after it)."""

    kind: Literal["replan"] = "replan"
    task_id: TaskId
    feedback: str
    new_tasks: tuple[TaskSpec, ...]
    keep: bool = False


Verdict = Accept | RetryTask | EscalateTask | ReplanTask


class Reviewer(Protocol):
    async def review(self, request: ReviewRequest, client: ModelClient) -> tuple[Verdict, ...]:
        """Judge a batch of finished tasks; tasks it says nothing about are accepted."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class SynthesisRequest:
    goal: str
    plan: Plan
    results: Mapping[TaskId, str]
    """Per task: its summary and outputs, or why it failed or was skipped."""
    model: str
    stopped: str = ""
    """Why the run stopped before its plan ran out (e.g. `budget: cost — ...`); empty if not."""


class Synthesizer(Protocol):
    async def synthesize(self, request: SynthesisRequest, client: ModelClient) -> str:
        """Write the final answer to the goal from the task results."""
        ...
