"""The embedded 135M model carries the offline example through the whole loop over real HTTP.

Structure only: a valid plan, every leaf terminal, events and result written. Not the wording.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from examples import word_counts
from orchestrator import Orchestrator, Settings
from orchestrator.report import render_result

pytestmark = [pytest.mark.local_model, pytest.mark.timeout(600)]


async def test_local_example_runs_plan_leaves_review_answer(tmp_path: Path) -> None:
    settings = Settings(backend="local", run_root=tmp_path / "runs")
    orch = Orchestrator(tools=[word_counts.word_count], settings=settings, builtin_tools=False,
                        workdir=tmp_path)
    result = await orch.run(word_counts.GOAL, context=word_counts.CONTEXT)
    print(render_result(result))
    assert orch.notice is not None and "135M" in orch.notice
    assert result.plan is not None and result.plan.tasks
    assert set(result.results) == {t.id for t in result.plan.tasks}
    assert result.status in ("completed", "partial")
    assert result.answer.strip()
    # llama.cpp's server sends no usage chunk on a stream: the streamed plan's tokens are estimated
    planner = result.usage_by_role["planner"].tokens
    assert planner.input_tokens > 0 and planner.output_tokens > 0
    events = [json.loads(line) for line in Path(result.run_dir or "", "events.jsonl").read_text().splitlines()]
    kinds = {e["kind"] for e in events}
    assert {"run_started", "plan_validated", "task_started", "tool_called", "model_called",
            "run_finished"} <= kinds
    assert any(e["kind"] == "model_called" and e["role"] == "reviewer" for e in events) or all(
        r.kind != "succeeded" for r in result.results.values()
    )
    assert Path(result.run_dir or "", "result.json").is_file()
