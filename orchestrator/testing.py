"""Public test doubles: `ScriptedModel` (the only model double), `RecordingSink`, reply builders.

Steps are queued per role (and optionally per task), because concurrent workers make the global
call order nondeterministic. A step is a `ModelReply`, an exception to raise, a pydantic model to
return as structured output, or a responder `(request) -> ModelReply` (sync or async). The reply
builders (`plan_reply`, `task`, `tool_call`, `leaf_report`, `accept_all`, `answer`, ...) write
each role's reply in the shape the default roles expect, so a scripted run is a few lines::

    model = (
        ScriptedModel()
        .script("planner", plan_reply(task("count", tools=["word_count"])))
        .script("worker", tool_call("word_count", {"text": "a b c"}), leaf_report("3 words"))
        .respond("reviewer", accept_all())
        .script("synthesizer", answer("There are 3 words."))
    )
"""

from __future__ import annotations

import inspect
import json
import re
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import anyio
from pydantic import BaseModel, ValidationError

from .agents.planner import PlanOut
from .agents.reviewer import ReviewOut, VerdictOut
from .agents.schemas import TaskOut
from .agents.worker import LeafReportOut, OutputItem
from .errors import ModelBehaviorError, OrchestratorError
from .events import Event
from .llm import (
    ModelCapabilities,
    ModelReply,
    ModelRequest,
    ReplyDone,
    StreamEvent,
    TextDelta,
    ToolCall,
)
from .models import Plan, TaskId, TaskSpec, TokenUsage
from .preview import CostRange, PlanEstimate, PlanPreview

Responder = Callable[[ModelRequest], ModelReply | Awaitable[ModelReply]]
Step = ModelReply | BaseException | BaseModel | Responder


class UnexpectedModelCall(OrchestratorError):
    """The code under test made a model call that no script step was left for."""


class UnconsumedSteps(OrchestratorError):
    """A test ended with scripted steps that were never used."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedCall:
    """One call the scripted model received."""

    request: ModelRequest
    key: str
    """The queue it was answered from: `role` or `role:task_id`."""


@dataclass(slots=True)
class ScriptedModel:
    """A `ModelClient` that answers from per-role scripts and records every call."""

    capabilities: ModelCapabilities = field(
        default_factory=lambda: ModelCapabilities(native_tools=frozenset())
    )
    calls: list[RecordedCall] = field(default_factory=lambda: [])
    stream_chunk_chars: int = 16
    """How many characters each streamed delta carries."""
    _queues: dict[str, deque[Step]] = field(default_factory=lambda: {})
    _standing: dict[str, Responder] = field(default_factory=lambda: {})
    _gates: dict[str, tuple[str, anyio.Event]] = field(default_factory=lambda: {})

    def pause_stream(self, role: str, after: str, until: anyio.Event) -> ScriptedModel:
        """Hold `role`'s stream once the streamed text contains `after`, until `until` is set.

        Lets a test prove that work starts while a stream is still being written.
        """
        self._gates[role] = (after, until)
        return self

    def respond(self, role: str, responder: Responder) -> ScriptedModel:
        """Answer every call of `role` that no queued step is left for with `responder`.

        For roles whose call count depends on timing (the batched reviewer) or on the plan.
        """
        self._standing[role] = responder
        return self

    def script(self, role: str, *steps: Step, task: str | None = None) -> ScriptedModel:
        """Queue steps for a role, or for one task's worker calls when `task` is given."""
        for step in steps:
            if not isinstance(step, ModelReply | BaseException | BaseModel) and not callable(step):
                raise TypeError(f"not a script step: {step!r}")
        key = role if task is None else f"{role}:{task}"
        self._queues.setdefault(key, deque()).extend(steps)
        return self

    async def complete(self, request: ModelRequest) -> ModelReply:
        key, step = self._pop(request)
        self.calls.append(RecordedCall(request=request, key=key))
        await anyio.lowlevel.checkpoint()
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, BaseModel):
            return ModelReply(text=step.model_dump_json(), parsed=step, usage=_tokens(request))
        if isinstance(step, ModelReply):
            return _finish(step, request)
        reply = step(request)
        if inspect.isawaitable(reply):
            reply = await reply
        return _finish(reply, request)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Stream the scripted reply's text in chunks, then the reply itself."""
        reply = await self.complete(request)
        text = reply.text
        gate = self._gates.get(request.role)
        for start in range(0, len(text), self.stream_chunk_chars):
            end = start + self.stream_chunk_chars
            yield TextDelta(text=text[start:end])
            if gate is not None and gate[0] in text[:end]:
                await gate[1].wait()
                gate = None
            await anyio.lowlevel.checkpoint()
        yield ReplyDone(reply=reply)

    def _pop(self, request: ModelRequest) -> tuple[str, Step]:
        keys = (
            [request.role]
            if request.task_id is None
            else [
                f"{request.role}:{request.task_id}",
                request.role,
            ]
        )
        for key in keys:
            queue = self._queues.get(key)
            if queue:
                return key, queue.popleft()
        if request.role in self._standing:
            return request.role, self._standing[request.role]
        raise UnexpectedModelCall(
            f"no scripted step left for role={request.role} task={request.task_id}"
        )

    def remaining(self) -> Mapping[str, int]:
        return {k: len(q) for k, q in self._queues.items() if q}

    def assert_complete(self) -> None:
        """Raise `UnconsumedSteps` when any queued step was never used."""
        if left := self.remaining():
            raise UnconsumedSteps(f"scripted steps never used: {dict(left)}")

    def calls_for(self, role: str, task: str | None = None) -> list[ModelRequest]:
        return [
            c.request
            for c in self.calls
            if c.request.role == role and (task is None or c.request.task_id == task)
        ]


def _tokens(request: ModelRequest) -> TokenUsage:
    """Deterministic token counts (about 4 characters a token) so accounting is testable."""
    chars = sum(len(getattr(m, "content", "")) for m in request.messages)
    return TokenUsage(input_tokens=max(1, chars // 4), output_tokens=8, requests=1)


def _finish(reply: ModelReply, request: ModelRequest) -> ModelReply:
    usage = reply.usage if reply.usage.requests else _tokens(request)
    parsed = reply.parsed
    if request.output_type is not None and parsed is None and not reply.tool_calls:
        try:
            parsed = request.output_type.model_validate_json(reply.text)
        except ValidationError as exc:
            raise ModelBehaviorError(
                f"reply does not match {request.output_type.__name__}: {exc.errors()[:3]}",
                usage=usage,
                model=reply.model or request.model,
            ) from exc
    return ModelReply(
        text=reply.text,
        parsed=parsed,
        tool_calls=reply.tool_calls,
        usage=usage,
        model=reply.model or request.model,
        finish_reason=reply.finish_reason,
    )


def tool_call(
    name: str, arguments: Mapping[str, object] | None = None, *, call_id: str = ""
) -> ModelReply:
    """A reply that calls one function tool."""
    call = ToolCall(
        call_id=call_id or f"call_{name}", name=name, arguments=json.dumps(arguments or {})
    )
    return ModelReply(tool_calls=(call,), finish_reason="tool_calls")


def text_reply(text: str) -> ModelReply:
    """A plain-text reply."""
    return ModelReply(text=text)


# --- reply builders for the default roles ----------------------------------------------------


def task(
    task_id: str,
    *deps: str,
    tools: Iterable[str] = (),
    instruction: str | None = None,
    produces: str | None = None,
    check: str | None = None,
    tier: str | None = None,
    est_seconds: float | None = None,
) -> TaskOut:
    """One task of a scripted plan, depending on `deps`; unset texts are made from the id.

    Args:
        task_id: The task's id.
        deps: Ids of the tasks it depends on.
        tools: Tools the task may use, by name (a plugin's or `tools=[...]`'s).
        instruction: What the executor is told; "do <id>" when None.
        produces: What it should produce; "<id> result" when None.
        check: An acceptance check command, run in the workspace after the task.
        tier: The tier the task starts at; None starts at the bottom of the ladder.
        est_seconds: The planner's duration estimate, for critical-path ordering.
    """
    return TaskOut(
        id=task_id,
        instruction=instruction or f"do {task_id}",
        deps=list(deps),
        tools=list(tools),
        produces=produces or f"{task_id} result",
        check_command=check,
        tier=tier,
        est_seconds=est_seconds,
    )


def plan_reply(*tasks: TaskOut, rationale: str = "split") -> PlanOut:
    """The planner's reply: a plan of `tasks` (build each with `task`), listed deps first."""
    return PlanOut(rationale=rationale, tasks=list(tasks))


def leaf_report(
    summary: str = "ok",
    status: Literal["done", "failed", "ambiguous"] = "done",
    **outputs: str,
) -> LeafReportOut:
    """An executor's final report on its task, with named `outputs` its dependents receive."""
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
    new_tasks: Iterable[TaskOut] | None = None,
) -> VerdictOut:
    """The reviewer's verdict on one task (`new_tasks` replace it when `kind` is replan)."""
    return VerdictOut(
        task_id=task_id,
        verdict=kind,
        feedback=feedback,
        new_tasks=None if new_tasks is None else list(new_tasks),
    )


def review_reply(*verdicts: VerdictOut) -> ReviewOut:
    """The reviewer's reply on one batch: a verdict per task under review."""
    return ReviewOut(verdicts=list(verdicts))


_REVIEWED_TASK = re.compile(r"^### (\S+) \(tier ", flags=re.MULTILINE)
"""How the default reviewer's prompt heads each task under review."""


def accept_all() -> Callable[[ModelRequest], ModelReply]:
    """A standing reviewer (`respond("reviewer", accept_all())`) accepting every task it sees.

    Batches depend on timing, so it reads the tasks of each call from the request.
    """

    def accept(request: ModelRequest) -> ModelReply:
        text = "\n".join(m.content for m in request.messages if m.role == "user")
        verdicts = [verdict(tid, "accept") for tid in _REVIEWED_TASK.findall(text)]
        return ModelReply(text=review_reply(*verdicts).model_dump_json())

    return accept


def answer(text: str = "final answer") -> ModelReply:
    """The synthesizer's reply: the answer's prose (the run appends each task's result)."""
    return ModelReply(text=text)


def plan_preview(*tasks: TaskSpec, goal: str = "goal") -> PlanPreview:
    """What an `on_plan` gate is shown, for these tasks and an estimate of $0: test a gate alone."""
    estimate = PlanEstimate(
        tasks=(),
        planning_usd=0.0,
        overhead=CostRange(),
        overhead_basis="model",
        low_usd=0.0,
        expected_usd=0.0,
        high_usd=0.0,
    )
    return PlanPreview(goal=goal, plan=Plan(goal=goal, tasks=tasks), estimate=estimate)


def tool_then_report(
    tool: str, arguments: Mapping[str, object] | None = None, *, summary: str = "ok"
) -> Callable[[ModelRequest], ModelReply]:
    """A standing worker: each task calls `tool` once, then reports done with `summary`.

    For `respond("worker", ...)` when many tasks do the same; script per task otherwise.
    """

    def respond(request: ModelRequest) -> ModelReply:
        if any(m.role == "tool" for m in request.messages):
            return ModelReply(text=leaf_report(summary).model_dump_json())
        return tool_call(tool, arguments, call_id=f"call_{request.task_id}")

    return respond


@dataclass(slots=True)
class RecordingSink:
    """An `EventSink` that keeps every event, for assertions."""

    events: list[Event] = field(default_factory=lambda: [])

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def of(self, kind: str, task_id: TaskId | str | None = None) -> list[Event]:
        return [
            e
            for e in self.events
            if e.kind == kind and (task_id is None or getattr(e, "task_id", None) == task_id)
        ]
