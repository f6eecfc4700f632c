"""The executor role: a bounded model ↔ tools loop for one leaf, ending in a structured report."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.errors import ModelBehaviorError
from orchestrator.llm import (
    AssistantMessage,
    Message,
    ModelCapabilities,
    ModelClient,
    ModelReply,
    ModelRequest,
    SystemMessage,
    ToolCall,
    ToolDefinition,
    ToolResultMessage,
    UserMessage,
)
from orchestrator.roles import AttemptError, LeafReport, WorkOutcome, WorkRequest
from orchestrator.toolkit import Tool, ToolContext, ToolFailed, ToolOutput, ToolRetry

WORKER_PROMPT = """\
You are an executor agent. You carry out ONE task of a larger plan and report back.
- Use the tools you are given when the task needs them; read their results before you answer.
- Do exactly what the task says; do not start other work.
- When you are finished, reply with the JSON report: status "done" when the task is complete,
  "failed" when it cannot be done, "ambiguous" when the instruction is unclear or needs judgement
  beyond the task; a short summary; outputs as name/value pairs holding what the task must produce;
  confidence between 0 and 1.
"""

MAX_INVALID_REPLIES = 2
"""Malformed final replies in a row before the attempt counts as invalid output."""

MAX_TOOL_OUTPUT_CHARS = 1_000
"""Per tool result recorded among a compact report's outputs."""

_Shape = tuple[tuple[ToolDefinition, ...], str, type[BaseModel] | None]
"""One turn's tools, tool_choice and output type."""


class OutputItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    value: str


class LeafReportOut(BaseModel):
    """The executor's final reply schema (strict-mode friendly: every field required)."""

    model_config = ConfigDict(extra="forbid")
    status: Literal["done", "failed", "ambiguous"]
    summary: str
    outputs: list[OutputItem]
    confidence: float | None


class CompactLeafReportOut(LeafReportOut):
    """The report for very small models: a short summary and no confidence to invent."""

    summary: Annotated[str, Field(max_length=240)]
    confidence: None  # pyright: ignore[reportIncompatibleVariableOverride] - narrowed on purpose: the schema must forbid it


class NextStepOut(BaseModel):
    """For backends that only return tool calls when the tool is named: pick the next step."""

    model_config = ConfigDict(extra="forbid")
    action: Literal["call_tool", "finish"]
    tool: str | None


class ExecutorWorker:
    """Satisfies `orchestrator.roles.Worker`."""

    def __init__(
        self,
        *,
        temperature: float | None = None,
        max_output_tokens: int | None = None,
        compact: bool = False,
    ) -> None:
        self._temperature = temperature
        self._max_output_tokens = max_output_tokens
        self._report: type[LeafReportOut] = CompactLeafReportOut if compact else LeafReportOut
        self._records_tools = compact
        """Very small models garble what tools returned: their reports carry it verbatim."""

    async def work(self, request: WorkRequest, client: ModelClient) -> WorkOutcome:
        caps = client.capabilities
        tools = {t.name: t for t in request.tools}
        defs = tuple(tools[n].definition(native=caps.native_tools) for n in sorted(tools))
        messages: list[Message] = [
            SystemMessage(content=WORKER_PROMPT),
            UserMessage(content=render_task(request)),
        ]
        # Where tools and a format cannot share a request, the report is a turn of its own.
        split = bool(defs) and caps.tool_calls and not caps.tools_with_format
        reporting = False
        invalid = 0
        tool_rounds = 0
        tool_outputs: dict[str, str] = {}
        for turn in range(1, request.max_turns + 1):
            if split and not reporting and tool_rounds and turn == request.max_turns:
                reporting = True  # the last turn is the report's, so the tool work is not lost
                messages.append(UserMessage(content=_REPORT_NOW))
            shape = await self._shape(request, client, caps, defs, messages, tool_rounds, reporting)
            try:
                reply = await client.complete(self._request(request, messages, *shape))
            except ModelBehaviorError as exc:
                invalid += 1
                if invalid >= MAX_INVALID_REPLIES:
                    return AttemptError(trigger="invalid_output", detail=str(exc), turns=turn)
                messages.append(UserMessage(content=f"Your reply was not valid: {exc}. {_ASK}"))
                continue
            if reply.tool_calls:
                tool_rounds += 1
                results = await self._run_tools(request, tools, reply)
                messages.extend(results)
                if self._records_tools:
                    _record_tool_outputs(tool_outputs, results)
                if caps.tool_calls_need_named_choice and len(defs) == 1:
                    # The next turn must report; small models follow the last instruction best.
                    messages.append(UserMessage(content=_REPORT_NOW))
                continue
            if (report := _report(reply, turn)) is not None:
                return _with_tool_outputs(report, tool_outputs)
            if split and not reporting:
                # A text reply ends the tool phase: ask for the report, now with its schema.
                reporting = True
                messages.extend(_then(reply.text, _REPORT_NOW))
                continue
            invalid += 1
            if invalid >= MAX_INVALID_REPLIES:
                detail = f"no report in: {reply.text[:300]}"
                return AttemptError(trigger="invalid_output", detail=detail, turns=turn)
            messages.extend(_then(reply.text, _ASK))
        return AttemptError(
            trigger="turn_limit",
            detail=f"no report after {request.max_turns} turns",
            turns=request.max_turns,
        )

    async def _shape(
        self,
        request: WorkRequest,
        client: ModelClient,
        caps: ModelCapabilities,
        defs: tuple[ToolDefinition, ...],
        messages: Sequence[Message],
        tool_rounds: int,
        reporting: bool,
    ) -> _Shape:
        """Tools, tool_choice and output type for the next turn, adapted to the backend."""
        if reporting or not defs or not caps.tool_calls:
            return (), "none", self._report
        if not caps.tool_calls_need_named_choice:
            # Without `tools_with_format` a format's grammar would forbid tool calls: tool turns
            # go without it and `work` asks for the report in a turn of its own.
            return defs, "auto", self._report if caps.tools_with_format else None
        # Named-choice backends: one forced call per round, chosen by a small structured step.
        if len(defs) == 1:
            return (defs, defs[0].name, None) if tool_rounds == 0 else ((), "none", self._report)
        step = await client.complete(
            self._request(
                request, [*messages, UserMessage(content=_CHOOSE)], (), "none", NextStepOut
            )
        )
        choice = step.parsed
        names = {d.name for d in defs}
        if (
            isinstance(choice, NextStepOut)
            and choice.action == "call_tool"
            and choice.tool in names
        ):
            return tuple(d for d in defs if d.name == choice.tool), str(choice.tool), None
        return (), "none", self._report

    def _request(
        self,
        request: WorkRequest,
        messages: Sequence[Message],
        tools: tuple[ToolDefinition, ...],
        tool_choice: str,
        output_type: type[BaseModel] | None,
    ) -> ModelRequest:
        return ModelRequest(
            role="worker",
            model=request.tier.model,
            tier=request.tier.name,
            task_id=request.task.id,
            messages=tuple(messages),
            tools=tools,
            tool_choice=tool_choice,
            output_type=output_type,
            temperature=self._temperature,
            max_output_tokens=self._max_output_tokens,
            prompt_cache_key="orch-worker",
        )

    async def _run_tools(
        self, request: WorkRequest, tools: dict[str, Tool], reply: ModelReply
    ) -> list[Message]:
        out: list[Message] = [AssistantMessage(content=reply.text, tool_calls=reply.tool_calls)]
        for call in reply.tool_calls:
            result = await _call_tool(request, tools, call)
            out.append(
                ToolResultMessage(
                    call_id=call.call_id,
                    name=call.name,
                    kind=call.kind,
                    content=result.content,
                    is_error=result.is_error,
                    native=result.native,
                )
            )
        return out


_ASK = "Reply now with only the JSON report (status, summary, outputs, confidence)."
_REPORT_NOW = (
    'Now write the JSON report. If the tool result completes the task, status is "done" and '
    "the summary states the result."
)
_CHOOSE = (
    "Decide the next step: call one of the tools (action call_tool, tool = its exact name) or "
    "finish (action finish, tool null)."
)


def _then(text: str, ask: str) -> list[Message]:
    """The model's text reply (if any), then what we ask next."""
    said: list[Message] = [AssistantMessage(content=text)] if text else []
    return [*said, UserMessage(content=ask)]


async def _call_tool(request: WorkRequest, tools: dict[str, Tool], call: ToolCall) -> ToolOutput:
    """Run one call; every failure becomes output the model can read, never a crash of the loop."""
    tool = tools.get(call.name)
    if tool is None:
        known = ", ".join(sorted(tools)) or "none"
        return ToolOutput(content=f"unknown tool {call.name!r}; available: {known}", is_error=True)
    ctx = ToolContext(
        workdir=request.workdir,
        run_dir=request.run_dir,
        run_id=request.run_id,
        task_id=request.task.id,
        call_id=call.call_id,
        approve=request.approve,
        effects=request.effects,
    )
    try:
        return await tool(call, ctx)
    except ToolRetry as sig:
        return ToolOutput(
            content=f"{sig.message} (fix the arguments and call again)", is_error=True
        )
    except ToolFailed as sig:
        return ToolOutput(content=sig.message, is_error=True, native={"terminal": True})
    except Exception as exc:  # a tool bug must not kill the attempt: the model sees it and adapts
        return ToolOutput(content=f"{type(exc).__name__}: {exc}", is_error=True)


def _record_tool_outputs(recorded: dict[str, str], results: Sequence[Message]) -> None:
    """Note each successful tool result under the tool's name (`name #2` for a second call)."""
    for message in results:
        if isinstance(message, ToolResultMessage) and not message.is_error:
            name, n = message.name, 1
            while name in recorded:
                n += 1
                name = f"{message.name} #{n}"
            recorded[name] = message.content[:MAX_TOOL_OUTPUT_CHARS]


def _with_tool_outputs(report: LeafReport, tool_outputs: Mapping[str, str]) -> LeafReport:
    """The report with what the tools returned among its outputs, over any same-named guess."""
    if not tool_outputs:
        return report
    return dataclasses.replace(report, outputs={**report.outputs, **tool_outputs})


def _report(reply: ModelReply, turn: int) -> LeafReport | None:
    parsed = reply.parsed
    if not isinstance(parsed, LeafReportOut):
        parsed = _lenient_parse(reply.text)
    if parsed is None:
        return None
    return LeafReport(
        status=parsed.status,
        summary=parsed.summary,
        outputs={o.name: o.value for o in parsed.outputs},
        confidence=parsed.confidence,
        turns=turn,
    )


def _lenient_parse(text: str) -> LeafReportOut | None:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        return LeafReportOut.model_validate(json.loads(text[start : end + 1], strict=False))
    except ValueError:
        return None


def render_task(request: WorkRequest) -> str:
    """The task as the executor reads it: instruction, expected output, inputs and feedback."""
    task = request.task
    parts = [
        f"Overall goal (context only): {request.goal}",
        f"Your task ({task.id}): {task.instruction}",
    ]
    if task.produces:
        parts.append(f"It must produce: {task.produces}")
    if task.check is not None:
        parts.append(f"Your work will be checked by running: {task.check.command}")
    if request.tools:
        parts.append("Tools you may use: " + ", ".join(sorted(t.name for t in request.tools)))
    for dep in request.inputs:
        outputs = json.dumps(dict(dep.outputs), ensure_ascii=False)
        note = " (truncated)" if dep.truncated else ""
        parts.append(f"Input from {dep.task_id}{note}: {dep.summary}\nOutputs: {outputs}")
    if request.feedback:
        parts.append(
            "Feedback on earlier attempts:\n" + "\n".join(f"- {f}" for f in request.feedback)
        )
    return "\n\n".join(parts)
