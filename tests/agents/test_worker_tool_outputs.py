"""A compact (very small model) executor's report carries what its tools returned, verbatim."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator import tool
from orchestrator.agents.worker import ExecutorWorker, LeafReportOut, OutputItem
from orchestrator.llm import ModelReply
from orchestrator.local_model import LLAMA_CPP_CAPABILITIES
from orchestrator.models import RunId, TaskId, TaskSpec, TierSpec
from orchestrator.roles import LeafReport, WorkRequest
from orchestrator.testing import ScriptedModel, tool_call


@tool
def word_count(text: str) -> int:
    """Count the words in a text.

    Args:
        text: The text whose words to count.
    """
    return len(text.split())


def work_request(tmp_path: Path) -> WorkRequest:
    return WorkRequest(
        run_id=RunId("run-1"),
        goal="count words",
        task=TaskSpec(id=TaskId("count_1"), instruction="Count: a b c", tools=("word_count",)),
        tier=TierSpec(name="mini", model="small"),
        attempt=1,
        inputs=(),
        feedback=(),
        tools=(word_count,),
        workdir=tmp_path,
        run_dir=tmp_path / ".run",
        max_turns=4,
    )


def garbled_report(**outputs: str) -> ModelReply:
    report = LeafReportOut(
        status="done",
        summary="counted",
        outputs=[OutputItem(name=k, value=v) for k, v in outputs.items()],
        confidence=None,
    )
    return ModelReply(text=report.model_dump_json())


@pytest.mark.parametrize(
    ("compact", "outputs"),
    [
        (True, {"count": "seven", "word_count": "3"}),
        (False, {"count": "seven", "word_count": "a lot"}),
    ],
    ids=["compact-records-the-tool", "full-size-reports-as-written"],
)
async def test_worker_compact_report_carries_tool_results(
    tmp_path: Path, compact: bool, outputs: dict[str, str]
) -> None:
    model = ScriptedModel(capabilities=LLAMA_CPP_CAPABILITIES).script(
        "worker",
        tool_call("word_count", {"text": "a b c"}),
        garbled_report(count="seven", word_count="a lot"),
    )
    outcome = await ExecutorWorker(compact=compact).work(work_request(tmp_path), model)
    assert isinstance(outcome, LeafReport)
    assert dict(outcome.outputs) == outputs


async def test_worker_compact_report_names_repeated_tool_results(tmp_path: Path) -> None:
    caps = LLAMA_CPP_CAPABILITIES
    model = ScriptedModel(capabilities=caps).script(
        "worker",
        ModelReply(
            tool_calls=(
                *tool_call("word_count", {"text": "a b"}, call_id="c1").tool_calls,
                *tool_call("word_count", {"text": "a b c d"}, call_id="c2").tool_calls,
            ),
            finish_reason="tool_calls",
        ),
        garbled_report(),
    )
    outcome = await ExecutorWorker(compact=True).work(work_request(tmp_path), model)
    assert isinstance(outcome, LeafReport)
    assert dict(outcome.outputs) == {"word_count": "2", "word_count #2": "4"}
