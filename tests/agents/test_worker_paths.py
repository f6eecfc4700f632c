"""The executor off its common path: named-choice backends, prose instead of a report, tools
that signal or crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.agents.worker import MAX_INVALID_REPLIES, ExecutorWorker, NextStepOut
from orchestrator.llm import (
    ModelCapabilities,
    ToolCall,
    ToolDefinition,
    ToolKind,
    ToolResultMessage,
)
from orchestrator.models import RunId, TaskId, TaskSpec, TierSpec
from orchestrator.roles import AttemptError, LeafReport, WorkRequest
from orchestrator.testing import ScriptedModel, leaf_report, text_reply, tool_call
from orchestrator.toolkit import Tool, ToolContext, ToolFailed, ToolOutput, ToolRetry

NAMED_CHOICE = ModelCapabilities(tool_calls_need_named_choice=True)
"""A backend that only returns a tool call when the request names the tool (llama.cpp)."""


class Echo:
    """A tool that returns its name and arguments, or raises `error` when given one."""

    def __init__(self, name: str, error: Exception | None = None) -> None:
        self._name: str = name
        self._error: Exception | None = error

    @property
    def name(self) -> str:
        return self._name

    def definition(self, *, native: frozenset[ToolKind]) -> ToolDefinition:
        return ToolDefinition(name=self._name, description=f"{self._name} things")

    async def __call__(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        if self._error is not None:
            raise self._error
        return ToolOutput(content=f"{self._name}({call.arguments}) for {ctx.task_id}")


def work_request(tmp_path: Path, *tools: Tool, max_turns: int = 6) -> WorkRequest:
    return WorkRequest(
        run_id=RunId("run-1"),
        goal="g",
        task=TaskSpec(id=TaskId("t1"), instruction="Do it.", tools=tuple(t.name for t in tools)),
        tier=TierSpec(name="mini", model="small"),
        attempt=1,
        inputs=(),
        feedback=(),
        tools=tools,
        workdir=tmp_path,
        run_dir=tmp_path / ".run",
        max_turns=max_turns,
    )


def shapes(model: ScriptedModel) -> list[tuple[tuple[str, ...], str, str | None]]:
    return [
        (
            tuple(t.name for t in c.request.tools),
            c.request.tool_choice,
            c.request.output_type.__name__ if c.request.output_type else None,
        )
        for c in model.calls
    ]


async def test_prose_instead_of_a_report_is_asked_again_then_gives_up(tmp_path: Path) -> None:
    """A forced-tool turn may come back as text; twice without a report is invalid output."""
    model = ScriptedModel(capabilities=NAMED_CHOICE).script(
        "worker", text_reply("I think {this: is not json}"), text_reply("still thinking")
    )
    outcome = await ExecutorWorker().work(work_request(tmp_path, Echo("look")), model)
    assert MAX_INVALID_REPLIES == 2
    assert outcome == AttemptError(
        trigger="invalid_output", detail="no report in: still thinking", turns=2
    )
    assert shapes(model) == [(("look",), "look", None)] * 2
    second = model.calls[1].request.messages
    assert (second[-2].role, second[-2].content) == ("assistant", "I think {this: is not json}")
    assert second[-1].role == "user" and "only the JSON report" in second[-1].content


async def test_a_report_inside_prose_is_read_leniently(tmp_path: Path) -> None:
    report = leaf_report("found it", answer="42").model_dump_json()
    model = ScriptedModel(capabilities=NAMED_CHOICE).script(
        "worker", text_reply(f"Here you go: {report} -- done")
    )
    outcome = await ExecutorWorker().work(work_request(tmp_path, Echo("look")), model)
    assert outcome == LeafReport(
        status="done", summary="found it", outputs={"answer": "42"}, confidence=0.9, turns=1
    )


async def test_named_choice_with_several_tools_asks_which_one_first(tmp_path: Path) -> None:
    model = ScriptedModel(capabilities=NAMED_CHOICE).script(
        "worker",
        NextStepOut(action="call_tool", tool="beta"),
        tool_call("beta", {"k": 1}),
        NextStepOut(action="call_tool", tool="gamma"),  # not one of its tools: report instead
        leaf_report("used beta"),
    )
    request = work_request(tmp_path, Echo("alpha"), Echo("beta"))
    outcome = await ExecutorWorker().work(request, model)
    assert isinstance(outcome, LeafReport) and outcome.summary == "used beta"
    assert outcome.turns == 2
    assert shapes(model) == [
        ((), "none", "NextStepOut"),
        (("beta",), "beta", None),
        ((), "none", "NextStepOut"),
        ((), "none", "LeafReportOut"),
    ]
    choose = model.calls[0].request.messages[-1]
    assert choose.role == "user" and "Decide the next step" in choose.content
    result = model.calls[2].request.messages[-2]
    assert isinstance(result, ToolResultMessage)
    assert (result.name, result.content, result.is_error) == (
        "beta",
        'beta({"k": 1}) for t1',
        False,
    )


async def test_named_choice_step_that_finishes_goes_to_the_report(tmp_path: Path) -> None:
    model = ScriptedModel(capabilities=NAMED_CHOICE).script(
        "worker", NextStepOut(action="finish", tool=None), leaf_report("nothing to call")
    )
    request = work_request(tmp_path, Echo("alpha"), Echo("beta"))
    outcome = await ExecutorWorker().work(request, model)
    assert isinstance(outcome, LeafReport) and outcome.turns == 1
    assert shapes(model) == [((), "none", "NextStepOut"), ((), "none", "LeafReportOut")]


@pytest.mark.parametrize(
    ("error", "content", "native"),
    [
        (
            ToolRetry("key must be upper case"),
            "key must be upper case (fix the arguments and call again)",
            None,
        ),
        (ToolFailed("the disk is gone"), "the disk is gone", {"terminal": True}),
        (KeyError("boom"), "KeyError: 'boom'", None),
    ],
    ids=["retry", "failed", "bug"],
)
async def test_a_tool_that_raises_becomes_an_error_result_the_model_reads(
    tmp_path: Path, error: Exception, content: str, native: dict[str, bool] | None
) -> None:
    model = ScriptedModel().script("worker", tool_call("look"), leaf_report("gave up"))
    outcome = await ExecutorWorker().work(work_request(tmp_path, Echo("look", error)), model)
    assert isinstance(outcome, LeafReport) and outcome.summary == "gave up"
    result = model.calls[1].request.messages[-1]
    assert isinstance(result, ToolResultMessage)
    assert (result.content, result.is_error, result.native) == (content, True, native)
