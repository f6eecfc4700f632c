from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import anyio
import pytest
from pydantic import BaseModel

from orchestrator.agents.plan_stream import TaskStreamParser
from orchestrator.agents.planner import DagPlanner
from orchestrator.errors import ModelBehaviorError
from orchestrator.llm import (
    ModelCapabilities,
    ModelReply,
    ModelRequest,
    ReplyDone,
    StreamEvent,
    TextDelta,
    ToolDefinition,
)
from orchestrator.models import Plan, TaskId, TaskSpec
from orchestrator.roles import PlanRequest
from orchestrator.testing import ScriptedModel, text_reply


def _task(
    task_id: str, instruction: str = "do it", deps: list[str] | None = None
) -> dict[str, object]:
    return {
        "id": task_id,
        "instruction": instruction,
        "deps": deps or [],
        "tools": [],
        "produces": "a result",
        "check_command": None,
        "tier": None,
        "est_seconds": None,
    }


def _spec(task_id: str) -> TaskSpec:
    return TaskSpec(id=TaskId(task_id), instruction="do it", produces="a result")


def _reply(*tasks: dict[str, object], rationale: str = "why") -> str:
    return json.dumps({"rationale": rationale, "tasks": list(tasks)})


def _ids(tasks: tuple[TaskSpec, ...] | list[TaskSpec]) -> list[str]:
    return [t.id for t in tasks]


def _feed_all(text: str, chunk: int = 1) -> list[TaskSpec]:
    parser = TaskStreamParser()
    found: list[TaskSpec] = []
    for start in range(0, len(text), chunk):
        found.extend(parser.feed(text[start : start + chunk]))
    return found


# --- the incremental parser -------------------------------------------------------------------


def test_parser_yields_task_on_its_closing_brace() -> None:
    text = _reply(_task("a"), _task("b", deps=["a"]))
    parser = TaskStreamParser()
    emitted_at: dict[str, int] = {}

    for index, char in enumerate(text):
        for task in parser.feed(char):
            emitted_at[task.id] = index

    first_close = text.index("}")
    second_close = text.index("}", first_close + 1)
    assert emitted_at == {"a": first_close, "b": second_close}
    assert parser.text == text


def test_parser_converts_to_task_spec() -> None:
    found = _feed_all(_reply(_task("a"), _task("b", deps=["a"])), chunk=7)

    assert found == [
        TaskSpec(id=TaskId("a"), instruction="do it", produces="a result"),
        TaskSpec(id=TaskId("b"), instruction="do it", deps=(TaskId("a"),), produces="a result"),
    ]


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 8, 13, 10_000], ids=lambda n: f"chunk{n}")
def test_parser_is_independent_of_delta_boundaries(chunk: int) -> None:
    tricky = 'say "}" then \\"{[ and a backslash \\\\ at the end\\'
    text = _reply(_task("a", tricky), _task("b", "plain"), rationale='"tasks": [{"id": "x"}]')

    found = _feed_all(text, chunk)

    assert _ids(found) == ["a", "b"]
    assert found[0].instruction == tricky


def test_parser_ignores_braces_and_quotes_inside_strings() -> None:
    instruction = 'print("{\\"tasks\\": [}") and } ] { ['
    found = _feed_all(_reply(_task("a", instruction), _task("b")))

    assert _ids(found) == ["a", "b"]
    assert found[0].instruction == instruction


def test_parser_ignores_tasks_text_outside_the_tasks_key() -> None:
    """`tasks` as a value, in the rationale, or in a nested object does not open the array."""
    text = (
        '{"rationale": "tasks", "note": {"tasks": [' + json.dumps(_task("nested")) + "]},"
        ' "tasks": [' + json.dumps(_task("real")) + "]}"
    )

    assert _ids(_feed_all(text)) == ["real"]


def test_parser_reads_tasks_key_in_any_position() -> None:
    text = '{"tasks": [' + json.dumps(_task("a")) + '], "rationale": "after"}'

    assert _ids(_feed_all(text)) == ["a"]


def test_parser_skips_malformed_objects() -> None:
    missing_field = {k: v for k, v in _task("bad").items() if k != "produces"}
    nested = {**_task("nested"), "extra": {"deep": [1, {"x": "}"}]}}
    text = _reply(_task("a"), missing_field, nested, _task("", "blank id"), _task("b"))

    assert _ids(_feed_all(text)) == ["a", "b"]


def test_parser_skips_a_repeated_id() -> None:
    text = _reply(_task("a", "first"), _task("a", "second"))

    found = _feed_all(text)

    assert [t.instruction for t in found] == ["first"]


def test_parser_tolerates_prose_and_fences() -> None:
    text = "Here is the plan } ]\n```json\n" + _reply(_task("a")) + "\n```\nDone."

    assert _ids(_feed_all(text, chunk=4)) == ["a"]


def test_parser_stops_after_the_tasks_array() -> None:
    text = '{"tasks": [' + json.dumps(_task("a")) + '], "extra": [' + json.dumps(_task("z")) + "]}"

    assert _ids(_feed_all(text)) == ["a"]


def test_parser_ignores_a_second_reply() -> None:
    text = _reply(_task("a")) + "\n" + _reply(_task("b"))

    parser = TaskStreamParser()
    found = [task for char in text for task in parser.feed(char)]

    assert _ids(found) == ["a"]
    assert parser.text == text
    assert parser.emitted == 1


# --- DagPlanner.plan_stream -------------------------------------------------------------------

GOAL = "two independent things, then a third"
REQUEST = PlanRequest(
    goal=GOAL,
    tools=(ToolDefinition(name="shell", description="Run a command."),),
    tiers=("mini",),
    model="planner-model",
)
TEXT = _reply(_task("a"), _task("b"), _task("c", deps=["a", "b"]))


@dataclass
class _CompleteOnly:
    """A client without `stream`: forwards `complete` to the scripted model."""

    model: ScriptedModel

    @property
    def capabilities(self) -> ModelCapabilities:
        return self.model.capabilities

    async def complete(self, request: ModelRequest) -> ModelReply:
        return await self.model.complete(request)


@dataclass
class _Counting(_CompleteOnly):
    """Forwards `stream` too, counting the deltas handed out and noting when it was closed."""

    deltas: int = 0
    is_closed: bool = False

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        try:
            async for event in self.model.stream(request):
                if isinstance(event, TextDelta):
                    self.deltas += 1
                yield event
        finally:
            self.is_closed = True


@dataclass
class _WholeReply(_CompleteOnly):
    """Streams like a gateway over a backend that cannot stream: one `ReplyDone`, no deltas."""

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        yield ReplyDone(reply=await self.model.complete(request))


@pytest.fixture
def model() -> Iterator[ScriptedModel]:
    scripted = ScriptedModel(stream_chunk_chars=8)
    yield scripted
    scripted.assert_complete()


async def test_plan_stream_yields_tasks_before_the_stream_ends(model: ScriptedModel) -> None:
    model.script("planner", text_reply(TEXT))
    client = _Counting(model)
    total_deltas = -(-len(TEXT) // 8)
    deltas_at_first_task: int | None = None
    items: list[TaskSpec | Plan] = []

    async for item in DagPlanner().plan_stream(REQUEST, client):
        if isinstance(item, TaskSpec) and deltas_at_first_task is None:
            deltas_at_first_task = client.deltas
        items.append(item)

    first_close = TEXT.index("}")
    assert deltas_at_first_task is not None
    assert deltas_at_first_task == first_close // 8 + 1  # the delta holding its closing brace
    assert deltas_at_first_task < total_deltas == client.deltas
    assert [type(i).__name__ for i in items] == ["TaskSpec"] * 3 + ["Plan"]
    plan = items[-1]
    assert isinstance(plan, Plan)
    assert plan.goal == GOAL
    assert plan.rationale == "why"
    assert list(plan.tasks) == items[:3]


async def test_plan_stream_hands_out_a_task_while_the_stream_is_held(
    model: ScriptedModel,
) -> None:
    """The model stream stalls once task `b` begins, until released; task `a` is out before.

    A planner that waited for the end of the stream would block on the gate forever.
    """
    release = anyio.Event()
    model.script("planner", text_reply(TEXT)).pause_stream("planner", '"id": "b"', release)
    stream = DagPlanner().plan_stream(REQUEST, model)

    with anyio.fail_after(2):
        first = await anext(stream)
    release.set()
    rest = [item async for item in stream]

    assert first == _spec("a")
    assert _ids([i for i in rest if isinstance(i, TaskSpec)]) == ["b", "c"]
    assert isinstance(rest[-1], Plan)


async def test_plan_stream_sends_the_plan_request(model: ScriptedModel) -> None:
    model.script("planner", text_reply(TEXT))
    planner = DagPlanner(temperature=0.0, max_output_tokens=512)

    _ = [item async for item in planner.plan_stream(REQUEST, _Counting(model))]

    assert model.calls_for("planner") == [planner.model_request(REQUEST)]


async def test_plan_stream_matches_plan(model: ScriptedModel) -> None:
    model.script("planner", text_reply(TEXT), text_reply(TEXT))

    streamed = [item async for item in DagPlanner().plan_stream(REQUEST, _Counting(model))]
    whole = await DagPlanner().plan(REQUEST, model)

    assert streamed[-1] == whole


async def test_plan_stream_falls_back_without_stream(model: ScriptedModel) -> None:
    model.script("planner", text_reply(TEXT))

    items = [item async for item in DagPlanner().plan_stream(REQUEST, _CompleteOnly(model))]

    assert _ids([i for i in items if isinstance(i, TaskSpec)]) == ["a", "b", "c"]
    assert isinstance(items[-1], Plan)
    assert items[-1].tasks == tuple(items[:3])


async def test_plan_stream_falls_back_when_backend_cannot_stream() -> None:
    model = ScriptedModel(capabilities=ModelCapabilities(streaming=False))
    model.script("planner", text_reply(TEXT))
    client = _Counting(model)

    items = [item async for item in DagPlanner().plan_stream(REQUEST, client)]

    assert client.deltas == 0
    assert len(items) == 4
    model.assert_complete()


async def test_plan_stream_hands_out_tasks_of_a_deltaless_stream(model: ScriptedModel) -> None:
    model.script("planner", text_reply(TEXT))

    items = [item async for item in DagPlanner().plan_stream(REQUEST, _WholeReply(model))]

    assert _ids([i for i in items if isinstance(i, TaskSpec)]) == ["a", "b", "c"]
    assert isinstance(items[-1], Plan)
    assert len(items) == 4


class _Unvalidated(BaseModel):
    """Stands for a backend that returned text without validating it against the schema."""


async def test_plan_stream_skips_malformed_task_then_raises(model: ScriptedModel) -> None:
    bad = {k: v for k, v in _task("bad").items() if k != "tools"}
    text = _reply(_task("a"), bad, _task("c"))
    model.script("planner", ModelReply(text=text, parsed=_Unvalidated()))
    stream = DagPlanner().plan_stream(REQUEST, _Counting(model))

    seen = [await anext(stream), await anext(stream)]
    with pytest.raises(ModelBehaviorError, match="PlanOut"):
        await anext(stream)

    assert seen == [_spec("a"), _spec("c")]


async def test_plan_stream_closes_the_model_stream_when_abandoned(model: ScriptedModel) -> None:
    model.script("planner", text_reply(TEXT))
    client = _Counting(model)
    stream = DagPlanner().plan_stream(REQUEST, client)

    first = await anext(stream)
    await stream.aclose()

    assert isinstance(first, TaskSpec)
    assert client.is_closed
    assert client.deltas < -(-len(TEXT) // 8)
