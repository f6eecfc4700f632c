"""The task schema the planner and the reviewer share, its conversions, and prompt renderers.

`TaskOut` is what a model writes; `TaskSpec` is what the engine runs. Both roles render the tool
catalog and the plan the same way, so the two prompts read alike and cache alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from orchestrator.errors import ModelBehaviorError
from orchestrator.llm import ModelReply, ToolDefinition
from orchestrator.models import AcceptanceCheck, Plan, TaskId, TaskSpec

OutT = TypeVar("OutT", bound=BaseModel)

_TOOL_DESCRIPTION_CHARS = 400
"""A tool's description is cut here in prompts: the planner needs its gist, not its manual."""
_QUOTE_CHARS = 300


# Output schemas are OpenAI strict-mode friendly: every field required (`X | None` when optional),
# no extras. Their docstrings become the schema's descriptions, so they are written for the model.


class TaskOut(BaseModel):
    """One task of the plan."""

    model_config = ConfigDict(extra="forbid")
    id: str
    instruction: str
    deps: list[str]
    tools: list[str]
    produces: str
    check_command: str | None
    tier: str | None
    est_seconds: float | None


def to_task_spec(task: TaskOut) -> TaskSpec:
    """The engine's task for a model-written one; blank optional strings count as absent."""
    command = (task.check_command or "").strip()
    tier = (task.tier or "").strip()
    return TaskSpec(
        id=TaskId(task.id.strip()),
        instruction=task.instruction.strip(),
        deps=tuple(TaskId(d.strip()) for d in task.deps),
        tools=tuple(t.strip() for t in task.tools),
        produces=task.produces.strip(),
        check=AcceptanceCheck(command=command) if command else None,
        tier_hint=tier or None,
        est_latency_s=task.est_seconds,
    )


def to_task_out(task: TaskSpec) -> TaskOut:
    """The model-facing form of a task, to show a plan back to a model."""
    return TaskOut(
        id=task.id,
        instruction=task.instruction,
        deps=list(task.deps),
        tools=list(task.tools),
        produces=task.produces,
        check_command=None if task.check is None else task.check.command,
        tier=task.tier_hint,
        est_seconds=task.est_latency_s,
    )


def render_tasks(tasks: Iterable[TaskSpec]) -> str:
    """Tasks as compact JSON in the shape models write them, one task per line."""
    lines = (to_task_out(t).model_dump_json() for t in tasks)
    return "[\n" + ",\n".join(lines) + "\n]"


def render_plan(plan: Plan) -> str:
    """A plan as compact JSON in the planner's output shape."""
    rationale = json.dumps(plan.rationale, ensure_ascii=False)
    return f'{{"rationale":{rationale},"tasks":{render_tasks(plan.tasks)}}}'


def render_tools(tools: Iterable[ToolDefinition]) -> str:
    """The tool catalog as a model reads it: one `- name: description` line per tool."""
    lines = [
        f"- {t.name}: {_squash(t.description, _TOOL_DESCRIPTION_CHARS)}"
        for t in sorted(tools, key=lambda t: t.name)
    ]
    if not lines:
        return "Tools: none. Give every task an empty tools list."
    return "Tools (give a task only the ones it needs, by exact name):\n" + "\n".join(lines)


def parse_reply(reply: ModelReply, output_type: type[OutT]) -> OutT:
    """The reply's structured output, also accepting a JSON object wrapped in prose or fences.

    Raises:
        ModelBehaviorError: the reply does not fit `output_type`.
    """
    if isinstance(reply.parsed, output_type):
        return reply.parsed
    text = reply.text
    try:
        return output_type.model_validate_json(text)
    except ValidationError as exc:
        error = exc
    found = _first_json_object(text)
    if found is not None:
        try:
            return output_type.model_validate(found)
        except ValidationError as exc:
            error = exc
    details = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()[:3]
    )
    raise ModelBehaviorError(
        f"reply does not fit {output_type.__name__} ({details}); "
        f"reply was {_squash(text, _QUOTE_CHARS)!r}"
    ) from error


def _first_json_object(text: str) -> object | None:
    """The first `{...}` in `text` that decodes, trying at most 64 starts."""
    decoder = json.JSONDecoder(strict=False)  # small models put raw newlines in strings
    start = text.find("{")
    for _ in range(64):
        if start == -1:
            return None
        try:
            return decoder.raw_decode(text, start)[0]
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
    return None


def _squash(text: str, limit: int) -> str:
    """`text` on one line, cut to `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
