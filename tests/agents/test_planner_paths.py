"""The planner and reply parsing at their edges: an unconstrained schema, a plan without tiers,
a stream cut before its final reply, prose with too many stray braces."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from orchestrator.agents.planner import DagPlanner, PlanOut, render_request
from orchestrator.agents.schemas import parse_reply
from orchestrator.errors import ModelBehaviorError
from orchestrator.llm import (
    ModelCapabilities,
    ModelReply,
    ModelRequest,
    StreamEvent,
    TextDelta,
    ToolDefinition,
)
from orchestrator.models import Plan, TaskSpec
from orchestrator.roles import PlanRequest
from orchestrator.testing import ScriptedModel, text_reply

SHELL = ToolDefinition(name="shell", description="Run a command.")


def request(*, tiers: tuple[str, ...] = ("mini",)) -> PlanRequest:
    return PlanRequest(goal="do two things", tools=(SHELL,), tiers=tiers, model="planner-model")


def task(task_id: str, *deps: str) -> dict[str, object]:
    return {
        "id": task_id,
        "instruction": f"do {task_id}",
        "deps": list(deps),
        "tools": ["shell"],
        "produces": "a result",
        "check_command": None,
        "tier": None,
        "est_seconds": None,
    }


TEXT = json.dumps({"rationale": "why", "tasks": [task("a"), task("b", "a")]})


def test_unconstrained_planner_uses_the_plain_schema() -> None:
    assert DagPlanner(constrain=False).schema(request()) is PlanOut
    constrained = DagPlanner().schema(request())
    assert constrained is not PlanOut and issubclass(constrained, PlanOut)


def test_request_without_tiers_names_none() -> None:
    text = render_request(request(tiers=()))
    assert "Executor tiers" not in text
    assert "Goal:\ndo two things" in text
    assert "Executor tiers, cheapest first: mini, base" in render_request(
        request(tiers=("mini", "base"))
    )


@dataclass
class _Deltas:
    """An async iterator (not a generator) over text deltas: no `aclose`, no final reply."""

    chunks: list[str]
    served: list[str] = field(default_factory=lambda: [])

    def __aiter__(self) -> _Deltas:
        return self

    async def __anext__(self) -> StreamEvent:
        if not self.chunks:
            raise StopAsyncIteration
        chunk = self.chunks.pop(0)
        self.served.append(chunk)
        return TextDelta(text=chunk)


@dataclass
class _CutStream:
    """Streams `text` in deltas, but the stream ends before its `ReplyDone`; `complete` goes to
    an unscripted model, so a call to it fails the test."""

    text: str
    model: ScriptedModel = field(default_factory=ScriptedModel)
    streams: list[_Deltas] = field(default_factory=lambda: [])

    @property
    def capabilities(self) -> ModelCapabilities:
        return self.model.capabilities

    async def complete(self, request: ModelRequest) -> ModelReply:
        return await self.model.complete(request)

    def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        assert request.role == "planner"
        stream = _Deltas([self.text[i : i + 10] for i in range(0, len(self.text), 10)])
        self.streams.append(stream)
        return stream


async def test_plan_stream_without_a_final_reply_parses_the_streamed_text() -> None:
    client = _CutStream(TEXT)
    items = [item async for item in DagPlanner().plan_stream(request(), client)]
    assert [type(i).__name__ for i in items] == ["TaskSpec", "TaskSpec", "Plan"]
    plan = items[-1]
    assert isinstance(plan, Plan) and plan.rationale == "why"
    assert [t.id for t in plan.tasks] == ["a", "b"]
    assert all(isinstance(i, TaskSpec) for i in items[:2]) and list(plan.tasks) == items[:2]
    (stream,) = client.streams
    assert "".join(stream.served) == TEXT and stream.chunks == []


def test_parse_reply_gives_up_after_64_stray_braces() -> None:
    report = json.dumps({"rationale": "why", "tasks": [task("a")]})
    assert parse_reply(text_reply("{ " * 63 + report), PlanOut).rationale == "why"
    with pytest.raises(ModelBehaviorError, match="reply does not fit PlanOut"):
        parse_reply(text_reply("{ " * 64 + report), PlanOut)
