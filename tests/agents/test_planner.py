from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from orchestrator.agents.planner import CACHE_KEY, PLANNER_PROMPT, DagPlanner, PlanOut
from orchestrator.agents.schemas import render_plan
from orchestrator.errors import ModelBehaviorError
from orchestrator.llm import SystemMessage, ToolDefinition, UserMessage
from orchestrator.models import AcceptanceCheck, Plan, TaskId, TaskSpec
from orchestrator.roles import PlanRequest
from orchestrator.testing import ScriptedModel, text_reply

TOOLS = (
    ToolDefinition(name="shell", description="Run a shell command\nin the workspace."),
    ToolDefinition(name="read_file", description="Read a text file."),
)

REPLY = {
    "rationale": "Read both files at once, then compare.",
    "tasks": [
        {
            "id": "read_a",
            "instruction": "Read a.txt and return its text.",
            "deps": [],
            "tools": ["read_file"],
            "produces": "the text of a.txt",
            "check_command": None,
            "tier": None,
            "est_seconds": 5,
        },
        {
            "id": "read_b",
            "instruction": "Read b.txt and return its text.",
            "deps": [],
            "tools": ["read_file"],
            "produces": "the text of b.txt",
            "check_command": "  ",
            "tier": "",
            "est_seconds": None,
        },
        {
            "id": "compare",
            "instruction": "Write diff.txt listing lines that differ.",
            "deps": ["read_a", "read_b"],
            "tools": ["shell"],
            "produces": "diff.txt",
            "check_command": "test -s diff.txt",
            "tier": "base",
            "est_seconds": 30.5,
        },
    ],
}

EXPECTED_TASKS = (
    TaskSpec(
        id=TaskId("read_a"),
        instruction="Read a.txt and return its text.",
        tools=("read_file",),
        produces="the text of a.txt",
        est_latency_s=5.0,
    ),
    TaskSpec(
        id=TaskId("read_b"),
        instruction="Read b.txt and return its text.",
        tools=("read_file",),
        produces="the text of b.txt",
    ),
    TaskSpec(
        id=TaskId("compare"),
        instruction="Write diff.txt listing lines that differ.",
        deps=(TaskId("read_a"), TaskId("read_b")),
        tools=("shell",),
        produces="diff.txt",
        check=AcceptanceCheck(command="test -s diff.txt"),
        tier_hint="base",
        est_latency_s=30.5,
    ),
)


@pytest.fixture
def model() -> Iterator[ScriptedModel]:
    scripted = ScriptedModel()
    yield scripted
    scripted.assert_complete()


def _request(
    goal: str = "Compare a.txt and b.txt",
    *,
    tools: tuple[ToolDefinition, ...] = TOOLS,
    context: str = "",
    rejected: Plan | None = None,
    error: str | None = None,
) -> PlanRequest:
    return PlanRequest(
        goal=goal,
        tools=tools,
        tiers=("mini", "base", "frontier"),
        model="planner-model",
        context=context,
        rejected=rejected,
        error=error,
    )


def _user_text(model: ScriptedModel, index: int = 0) -> str:
    message = model.calls_for("planner")[index].messages[1]
    assert isinstance(message, UserMessage)
    return message.content


async def test_planner_converts_reply_to_plan(model: ScriptedModel) -> None:
    model.script("planner", text_reply(json.dumps(REPLY)))

    plan = await DagPlanner().plan(_request(), model)

    assert plan == Plan(
        goal="Compare a.txt and b.txt",
        tasks=EXPECTED_TASKS,
        rationale="Read both files at once, then compare.",
    )


async def test_planner_request_fields(model: ScriptedModel) -> None:
    model.script("planner", text_reply(json.dumps(REPLY)))

    await DagPlanner(temperature=0.0, max_output_tokens=900).plan(_request(), model)

    (call,) = model.calls_for("planner")
    assert call.role == "planner"
    assert call.model == "planner-model"
    assert call.output_type is not None and issubclass(call.output_type, PlanOut)
    assert call.temperature == 0.0
    assert call.max_output_tokens == 900
    assert call.prompt_cache_key == CACHE_KEY == "orch-planner"
    assert call.tools == ()
    assert call.messages[0] == SystemMessage(content=PLANNER_PROMPT)
    assert len(call.messages) == 2


async def test_planner_options_default_to_backend(model: ScriptedModel) -> None:
    model.script("planner", text_reply(json.dumps(REPLY)))

    await DagPlanner().plan(_request(), model)

    (call,) = model.calls_for("planner")
    assert call.temperature is None
    assert call.max_output_tokens is None


async def test_planner_system_prompt_is_stable_across_goals(model: ScriptedModel) -> None:
    """Two runs with different goals send the same system message and the same cache key."""
    model.script("planner", text_reply(json.dumps(REPLY)), text_reply(json.dumps(REPLY)))

    await DagPlanner().plan(_request("goal one"), model)
    await DagPlanner().plan(_request("goal two", context="files: a.txt"), model)

    first, second = model.calls_for("planner")
    assert first.messages[0] == second.messages[0]
    assert first.prompt_cache_key == second.prompt_cache_key
    assert first.messages[1] != second.messages[1]


async def test_planner_user_message_puts_catalog_before_goal(model: ScriptedModel) -> None:
    model.script("planner", text_reply(json.dumps(REPLY)))

    await DagPlanner().plan(_request(context="a.txt\nb.txt"), model)

    text = _user_text(model)
    assert "- read_file: Read a text file." in text
    assert "- shell: Run a shell command in the workspace." in text
    assert "mini, base, frontier" in text
    assert text.index("read_file") < text.index("a.txt\nb.txt") < text.index("Goal:")
    assert text.endswith("Goal:\nCompare a.txt and b.txt")


async def test_planner_without_tools_says_so(model: ScriptedModel) -> None:
    model.script("planner", text_reply(json.dumps(REPLY)))

    await DagPlanner().plan(_request(tools=()), model)

    assert "Tools: none" in _user_text(model)


async def test_planner_repair_shows_rejected_plan_and_error(model: ScriptedModel) -> None:
    rejected = Plan(goal="Compare a.txt and b.txt", tasks=EXPECTED_TASKS, rationale="first try")
    error = "dependency cycle: read_a -> compare -> read_a; remove one of these dependencies"
    model.script("planner", text_reply(json.dumps(REPLY)), text_reply(json.dumps(REPLY)))

    await DagPlanner().plan(_request(), model)
    await DagPlanner().plan(_request(rejected=rejected, error=error), model)

    first, repair = _user_text(model, 0), _user_text(model, 1)
    assert repair.startswith(first)  # the repair call reuses the first call's prefix
    tail = repair[len(first) :]
    assert render_plan(rejected) in tail
    assert f"Validation error: {error}" in tail
    assert "corrected full plan" in tail
    assert tail.index("rejected") < tail.index("Validation error")


def test_planner_rejected_plan_is_compact_json() -> None:
    rejected = Plan(goal="g", tasks=EXPECTED_TASKS[:1], rationale='say "hi"')

    rendered = render_plan(rejected)

    assert json.loads(rendered) == {
        "rationale": 'say "hi"',
        "tasks": [
            {
                "id": "read_a",
                "instruction": "Read a.txt and return its text.",
                "deps": [],
                "tools": ["read_file"],
                "produces": "the text of a.txt",
                "check_command": None,
                "tier": None,
                "est_seconds": 5.0,
            }
        ],
    }
    assert '{"id":"read_a","instruction":' in rendered  # compact: no padding


async def test_planner_repair_without_rejected_plan(model: ScriptedModel) -> None:
    model.script("planner", text_reply(json.dumps(REPLY)))

    await DagPlanner().plan(_request(error="the plan has no tasks"), model)

    text = _user_text(model)
    assert "Your previous plan was rejected." in text
    assert "Validation error: the plan has no tasks" in text


async def test_planner_malformed_reply_raises(model: ScriptedModel) -> None:
    model.script("planner", text_reply('{"rationale": "x", "tasks": [{"id": "a"}]}'))

    with pytest.raises(ModelBehaviorError):
        await DagPlanner().plan(_request(), model)


async def test_planner_accepts_parsed_output(model: ScriptedModel) -> None:
    """A backend that already parsed the reply hands back a `PlanOut`; it is used as is."""
    model.script("planner", PlanOut.model_validate(REPLY))

    plan = await DagPlanner().plan(_request(), model)

    assert plan.tasks == EXPECTED_TASKS
