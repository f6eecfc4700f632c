"""The planner role: one model call turns a goal into a task DAG, streamed task by task when it can.

The system prompt is a constant, so every planner call shares one cacheable prefix; the tool
catalog (stable across runs) comes next, and the goal and any repair request come last.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any, Literal

import anyio
from pydantic import BaseModel, ConfigDict, Field, create_model

from orchestrator.llm import (
    ModelClient,
    ModelReply,
    ModelRequest,
    StreamEvent,
    StreamingModelClient,
    SystemMessage,
    TextDelta,
    UserMessage,
)
from orchestrator.models import Plan, TaskSpec
from orchestrator.roles import PlanRequest

from .plan_stream import TaskStreamParser
from .schemas import TaskOut, parse_reply, render_plan, render_tools, to_task_spec

PLANNER_PROMPT = """\
You are the planner of a team of AI agents. You split a goal into a small graph of tasks that \
cheap executor models carry out. You do not do the work yourself.

How the tasks run:
- A task starts as soon as every task in its deps has finished, and tasks that do not depend on \
each other run at the same time. Prefer wide plans: independent tasks side by side, short chains. \
Add a dependency only when a task needs another task's output.
- Each task is done by a cheap executor that sees ONLY its own instruction, the outputs of its \
deps and its tools. It never sees the other tasks or this plan. Write every instruction so it \
stands alone: name the exact files, inputs, constraints and the expected result.
- A task may use only the tools listed in the request, named exactly. Give each task only the \
tools it needs; a task that needs none gets [].
- Keep the plan small: one task per independent piece of work, not one per step. Do not add tasks \
that only plan, review or summarize: results are reviewed and combined after the tasks finish.
- List tasks so that every task comes after all of its deps. Tasks start while you are still \
writing, so never refer to a task that comes later in the list.

Fields of each task:
- id: short snake_case name, unique in the plan, e.g. "read_config".
- instruction: what to do, self-contained.
- deps: ids of earlier tasks whose outputs this task needs, or [].
- tools: exact names of the tools this task may call, or [].
- produces: what the task must hand back, e.g. "the names of the failing tests". Later tasks and \
the reviewer rely on it.
- check_command: a shell command that exits 0 only when the task is done, e.g. \
"python -m pytest tests/test_io.py -q"; null when no command can check the task.
- tier: null, or one of the listed tiers when a task clearly needs a stronger executor from the \
start.
- est_seconds: rough duration in seconds, or null.
Also give rationale: one or two sentences on how the plan splits the goal.

Reply with the JSON object only.
"""

CACHE_KEY = "orch-planner"
_CLOSE_TIMEOUT_S = 5.0

_create_model: Any = create_model
"""pydantic's overloads cannot type a model whose fields are built from runtime enums."""


class PlanOut(BaseModel):
    """The plan: a short rationale and the tasks, each listed after its deps."""

    model_config = ConfigDict(extra="forbid")
    rationale: str
    tasks: list[TaskOut]


@functools.lru_cache(maxsize=64)
def constrained_plan_schema(
    tools: tuple[str, ...], tiers: tuple[str, ...], compact: bool = False
) -> type[PlanOut]:
    """`PlanOut` with tool and tier names as enums and ids as short identifiers.

    Backends with constrained decoding (OpenAI strict mode, llama.cpp grammars) then cannot emit an
    unknown tool or tier, which small models otherwise do; the schema is the same for a given tool
    set, so the prompt prefix stays cacheable.
    """
    ident = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
    tool_type: object = Literal[tools] if tools else str
    tier_type: object = Literal[(*tiers, "")] if tiers else str  # "" is read as "no hint"
    if compact:
        # Tools before deps, and null-only fields where a tiny model would write prose.
        task: type[BaseModel] = _create_model(
            "TaskOut",
            __config__=ConfigDict(extra="forbid"),
            id=(ident, ...),
            instruction=(str, ...),
            tools=(list[tool_type], ...),  # type: ignore[valid-type]
            produces=(str, ...),
            # Flat plans only: tiny models invent dependencies they cannot name correctly.
            deps=(Annotated[list[ident], Field(max_length=0)], ...),  # type: ignore[valid-type]
            check_command=(None, ...),
            tier=(None, ...),
            est_seconds=(None, ...),
        )
    else:
        task = _create_model(
            "TaskOut",
            __base__=TaskOut,
            id=(ident, ...),
            deps=(list[ident], ...),  # type: ignore[valid-type]
            tools=(list[tool_type], ...),  # type: ignore[valid-type]
            tier=(tier_type | None, ...),  # type: ignore[operator]
        )
    tasks: object = list[task]  # type: ignore[valid-type]
    if compact:  # an empty plan is never valid; let the grammar say so
        tasks = Annotated[list[task], Field(min_length=1)]  # type: ignore[valid-type]
    return _create_model("PlanOut", __base__=PlanOut, tasks=(tasks, ...))


class DagPlanner:
    """Satisfies `orchestrator.roles.Planner`; `plan_stream` also yields tasks while streaming."""

    def __init__(
        self,
        *,
        temperature: float | None = None,
        max_output_tokens: int | None = None,
        constrain: bool = True,
        compact: bool = False,
    ) -> None:
        self._temperature = temperature
        self._max_output_tokens = max_output_tokens
        self._constrain = constrain
        self._compact = compact

    def schema(self, request: PlanRequest) -> type[PlanOut]:
        """The output schema for `request`: constrained to its tools and tiers unless disabled."""
        if not self._constrain:
            return PlanOut
        return constrained_plan_schema(
            tuple(sorted(t.name for t in request.tools)), tuple(request.tiers), self._compact
        )

    async def plan(self, request: PlanRequest, client: ModelClient) -> Plan:
        """Decompose the goal into tasks.

        Raises:
            ModelError: the call failed, or the reply does not fit `PlanOut` (ModelBehaviorError).
        """
        reply = await client.complete(self.model_request(request))
        return self._widen(request, to_plan(request.goal, parse_reply(reply, self.schema(request))))

    async def plan_stream(
        self, request: PlanRequest, client: ModelClient
    ) -> AsyncGenerator[TaskSpec | Plan, None]:
        """Yield each task as soon as its JSON is complete, then the whole validated `Plan`.

        When the reply arrives whole (the client has no `stream`, its backend cannot stream, or
        the stream carried no text deltas), its tasks are yielded before the plan all the same.
        Tasks yielded early may still belong to a plan that fails validation; the final `Plan` is
        the authority. Close the generator (`aclose`) when stopping early: that closes the model
        stream too.

        Raises:
            ModelError: the call failed, or the reply does not fit `PlanOut` (ModelBehaviorError).
        """
        model_request = self.model_request(request)
        parser = TaskStreamParser()
        reply: ModelReply | None = None
        if isinstance(client, StreamingModelClient) and client.capabilities.streaming:
            stream = client.stream(model_request)
            try:
                async for event in stream:
                    if isinstance(event, TextDelta):
                        for task in parser.feed(event.text):
                            yield self._widen_task(request, task)
                    else:
                        reply = event.reply
            finally:
                await _close(stream)
        else:
            reply = await client.complete(model_request)
        if reply is None or (reply.parsed is None and not reply.text):
            reply = ModelReply(text=parser.text)
        plan = self._widen(request, to_plan(request.goal, parse_reply(reply, self.schema(request))))
        if parser.emitted == 0:  # the reply came whole: hand out its tasks all the same
            for task in plan.tasks:
                yield task
        yield plan

    def _widen_task(self, request: PlanRequest, task: TaskSpec) -> TaskSpec:
        """In compact mode every task may use every tool: tiny models cannot pick tools."""
        if not self._compact:
            return task
        return dataclasses.replace(task, tools=tuple(sorted(t.name for t in request.tools)))

    def _widen(self, request: PlanRequest, plan: Plan) -> Plan:
        if not self._compact:
            return plan
        tasks = tuple(self._widen_task(request, t) for t in plan.tasks)
        return Plan(goal=plan.goal, tasks=tasks, rationale=plan.rationale)

    def model_request(self, request: PlanRequest) -> ModelRequest:
        """The model call for `request` (a first plan, or a repair when `request.error` is set)."""
        return ModelRequest(
            role="planner",
            model=request.model,
            messages=(
                SystemMessage(content=PLANNER_PROMPT),
                UserMessage(content=render_request(request)),
            ),
            output_type=self.schema(request),
            temperature=self._temperature,
            max_output_tokens=self._max_output_tokens,
            prompt_cache_key=CACHE_KEY,
        )


def render_request(request: PlanRequest) -> str:
    """The user message: tools and tiers (stable) first, then context and goal, then any repair."""
    parts = [render_tools(request.tools)]
    if request.tiers:
        parts.append("Executor tiers, cheapest first: " + ", ".join(request.tiers))
    if request.context.strip():
        parts.append("Workspace context:\n" + request.context.strip())
    parts.append("Goal:\n" + request.goal.strip())
    if request.error is not None:
        parts.append(_render_repair(request))
    return "\n\n".join(parts)


def _render_repair(request: PlanRequest) -> str:
    rejected = (
        "Your previous plan was rejected."
        if request.rejected is None
        else "Your previous plan was rejected:\n" + render_plan(request.rejected)
    )
    return (
        f"{rejected}\n\nValidation error: {request.error}\n\n"
        "Reply with a corrected full plan: all tasks, not only the changed ones."
    )


def to_plan(goal: str, out: PlanOut) -> Plan:
    """The engine's `Plan` for a validated planner reply."""
    return Plan(
        goal=goal,
        tasks=tuple(to_task_spec(t) for t in out.tasks),
        rationale=out.rationale.strip(),
    )


async def _close(stream: AsyncIterator[StreamEvent]) -> None:
    """Close an abandoned stream (consumer stopped early or was cancelled), bounded and shielded."""
    if isinstance(stream, AsyncGenerator):
        with anyio.move_on_after(_CLOSE_TIMEOUT_S, shield=True):
            await stream.aclose()
