"""The whole engine through the public API against the fault server with no faults: the
`EngineModel` responder plays every role, over both OpenAI APIs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pytest

from orchestrator.models import Succeeded
from orchestrator.testing import RecordingSink

from .engine_model import ANSWER, EngineModel, ToolLedger, run_orchestrator
from .fault_openai import ApiCall
from .fault_server import FaultServer


@pytest.mark.timeout(30)
@pytest.mark.parametrize("api", ["chat", "responses"])
@pytest.mark.parametrize("shape", ["independent", "layered"])
async def test_engine_model_runs_the_engine_to_completion(
    api: Literal["chat", "responses"],
    shape: Literal["independent", "layered"],
    tmp_path: Path,
) -> None:
    """20 tasks, review on, streamed plan: completed, all succeeded, each tool ran exactly once."""
    model = EngineModel(20, shape=shape, width=5)
    ledger = ToolLedger()
    sink = RecordingSink()
    with FaultServer(model, role_of=EngineModel.role_of, seed=1) as srv:
        result = await run_orchestrator(
            srv.base_url, api=api, ledger=ledger, workdir=tmp_path, sinks=[sink]
        )
    assert result.status == "completed"
    assert sorted(result.results) == list(model.task_ids)
    assert all(isinstance(r, Succeeded) for r in result.results.values())
    assert result.answer.partition("\n---\n")[0].strip() == ANSWER
    assert ledger.counts == dict.fromkeys(model.task_ids, 1)
    assert result.escalations == 0
    roles = {r.role for r in srv.records}
    assert roles == {"planner", "worker", "reviewer", "synthesizer"}
    assert all(r.fault is None and r.status == 200 for r in srv.records)
    assert [r.stream for r in srv.records if r.role == "planner"] == [True]
    assert len(sink.of("review_decided")) == 20


@pytest.mark.timeout(30)
async def test_engine_model_reports_usage_for_every_call(tmp_path: Path) -> None:
    """The streamed planner call and every plain call report tokens, so the run's usage is whole."""
    with FaultServer(EngineModel(5), role_of=EngineModel.role_of) as srv:
        result = await run_orchestrator(
            srv.base_url, api="chat", ledger=ToolLedger(), workdir=tmp_path
        )
    planner = result.usage_by_role["planner"].tokens
    assert planner.input_tokens > 0
    assert planner.output_tokens > 0
    assert result.usage.tokens.requests == len(srv.records)


def test_engine_model_role_of_reads_prompt_or_schema() -> None:
    chat = ApiCall(
        api="chat",
        body={
            "messages": [{"role": "user", "content": "x"}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "ReviewOut", "schema": {}},
            },
        },
        model="m",
        stream=False,
    )
    assert EngineModel.role_of(chat) == "reviewer"
    plain = ApiCall(api="responses", body={"instructions": "hello"}, model="m", stream=False)
    assert EngineModel.role_of(plain) is None


def test_engine_model_layered_plan_depends_on_the_previous_layer() -> None:
    model = EngineModel(6, shape="layered", width=3)
    tasks = json.loads(model.plan_json(["word_count"]))["tasks"]
    assert [t["deps"] for t in tasks] == [
        [],
        [],
        [],
        ["t0001", "t0002"],
        ["t0002", "t0003"],
        ["t0001", "t0003"],
    ]
    assert all(t["tools"] == ["word_count"] for t in tasks)
    assert json.loads(model.plan_json(["other"]))["tasks"][0]["tools"] == []
