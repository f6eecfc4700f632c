"""The executor's turns against backends where tools and a structured-output format compete."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.agents.worker import ExecutorWorker, LeafReportOut
from orchestrator.llm import ModelCapabilities, ModelReply, ModelRequest
from orchestrator.llm_openai_shape import SERVER_CAPABILITIES
from orchestrator.models import RunId, TaskId, TaskSpec, TierSpec
from orchestrator.roles import AttemptError, LeafReport, WorkRequest
from orchestrator.testing import ScriptedModel, leaf_report, text_reply, tool_call
from orchestrator.toolkit import ToolContext
from orchestrator.tools.base import tool

LLAMA_SERVER = SERVER_CAPABILITIES["llama-server"]


@tool
def lookup(ctx: ToolContext, key: str) -> str:
    """Look a key up.

    Args:
        key: What to look up.
    """
    return f"{key}=42"


def work_request(tmp_path: Path, *, max_turns: int = 6, tools: bool = True) -> WorkRequest:
    return WorkRequest(
        run_id=RunId("run-1"),
        goal="find the answer",
        task=TaskSpec(id=TaskId("t1"), instruction="Look up x.", tools=("lookup",)),
        tier=TierSpec(name="mini", model="small"),
        attempt=1,
        inputs=(),
        feedback=(),
        tools=(lookup,) if tools else (),
        workdir=tmp_path,
        run_dir=tmp_path / ".run",
        max_turns=max_turns,
    )


def shapes(model: ScriptedModel) -> list[tuple[tuple[str, ...], str, str | None]]:
    """Per call: tool names, tool_choice and output type name."""
    return [
        (
            tuple(t.name for t in call.request.tools),
            call.request.tool_choice,
            call.request.output_type.__name__ if call.request.output_type else None,
        )
        for call in model.calls
    ]


async def test_worker_tool_turns_go_without_format_and_report_alone(tmp_path: Path) -> None:
    model = ScriptedModel(capabilities=LLAMA_SERVER).script(
        "worker",
        tool_call("lookup", {"key": "x"}),
        text_reply("x is 42."),
        leaf_report("x is 42", answer="42"),
    )
    outcome = await ExecutorWorker().work(work_request(tmp_path), model)

    assert outcome == LeafReport(
        status="done", summary="x is 42", outputs={"answer": "42"}, confidence=0.9, turns=3
    )
    assert shapes(model) == [
        (("lookup",), "auto", None),
        (("lookup",), "auto", None),
        ((), "none", "LeafReportOut"),
    ]
    last = model.calls[-1].request.messages
    assert (last[-2].role, last[-2].content) == ("assistant", "x is 42.")
    assert last[-1].role == "user" and "JSON report" in last[-1].content


async def test_worker_accepts_a_report_written_in_a_tool_turn(tmp_path: Path) -> None:
    report = leaf_report("x is 42").model_dump_json()
    model = ScriptedModel(capabilities=LLAMA_SERVER).script(
        "worker", text_reply(f"Done.\n```json\n{report}\n```")
    )
    outcome = await ExecutorWorker().work(work_request(tmp_path), model)
    assert isinstance(outcome, LeafReport) and outcome.summary == "x is 42"
    assert len(model.calls) == 1


async def test_worker_keeps_tools_and_format_together_where_allowed(tmp_path: Path) -> None:
    model = ScriptedModel(capabilities=ModelCapabilities()).script(
        "worker", tool_call("lookup", {"key": "x"}), leaf_report("x is 42")
    )
    outcome = await ExecutorWorker().work(work_request(tmp_path), model)
    assert isinstance(outcome, LeafReport)
    assert shapes(model) == [
        (("lookup",), "auto", "LeafReportOut"),
        (("lookup",), "auto", "LeafReportOut"),
    ]


async def test_worker_reserves_the_last_turn_for_the_report(tmp_path: Path) -> None:
    model = ScriptedModel(capabilities=LLAMA_SERVER).script(
        "worker",
        tool_call("lookup", {"key": "x"}),
        tool_call("lookup", {"key": "y"}),
        leaf_report("x and y"),
    )
    outcome = await ExecutorWorker().work(work_request(tmp_path, max_turns=3), model)
    assert isinstance(outcome, LeafReport) and outcome.turns == 3
    assert shapes(model)[-1] == ((), "none", "LeafReportOut")


async def test_worker_without_tool_work_keeps_tools_on_the_last_turn(tmp_path: Path) -> None:
    """Nothing to report yet: the last turn stays a tool turn and the attempt runs out."""
    model = ScriptedModel(capabilities=LLAMA_SERVER).script(
        "worker", tool_call("lookup", {"key": "x"})
    )
    outcome = await ExecutorWorker().work(work_request(tmp_path, max_turns=1), model)
    assert outcome == AttemptError(trigger="turn_limit", detail="no report after 1 turns", turns=1)
    assert shapes(model) == [(("lookup",), "auto", None)]


async def test_worker_report_turn_retries_an_unparsable_report(tmp_path: Path) -> None:
    model = ScriptedModel(capabilities=LLAMA_SERVER).script(
        "worker", text_reply("done"), text_reply("still prose"), leaf_report("ok")
    )
    outcome = await ExecutorWorker().work(work_request(tmp_path), model)
    assert isinstance(outcome, LeafReport)
    assert [shape[2] for shape in shapes(model)] == [None, "LeafReportOut", "LeafReportOut"]


async def test_worker_without_tools_asks_for_the_report_at_once(tmp_path: Path) -> None:
    model = ScriptedModel(capabilities=LLAMA_SERVER).script("worker", leaf_report("nothing to do"))
    outcome = await ExecutorWorker().work(work_request(tmp_path, tools=False), model)
    assert isinstance(outcome, LeafReport)
    assert shapes(model) == [((), "none", "LeafReportOut")]


@pytest.mark.parametrize("compact", [False, True])
async def test_worker_named_choice_backends_still_force_then_report(
    tmp_path: Path, compact: bool
) -> None:
    caps = replace(LLAMA_SERVER, tool_calls_need_named_choice=True)

    def report(request: ModelRequest) -> ModelReply:
        assert request.output_type is not None and issubclass(request.output_type, LeafReportOut)
        return ModelReply(
            text='{"status": "done", "summary": "x is 42", "outputs": [], "confidence": null}'
        )

    model = ScriptedModel(capabilities=caps).script(
        "worker", tool_call("lookup", {"key": "x"}), report
    )
    outcome = await ExecutorWorker(compact=compact).work(work_request(tmp_path), model)
    assert isinstance(outcome, LeafReport)
    assert shapes(model)[0] == (("lookup",), "lookup", None)
    assert shapes(model)[1][:2] == ((), "none")
