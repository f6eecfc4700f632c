from __future__ import annotations

import json
from typing import cast

import pytest
from pydantic import BaseModel

from orchestrator.agents.planner import PlanOut
from orchestrator.agents.reviewer import ReviewOut
from orchestrator.agents.schemas import (
    TaskOut,
    parse_reply,
    render_tools,
    to_task_out,
    to_task_spec,
)
from orchestrator.errors import ModelBehaviorError
from orchestrator.llm import JSONValue, ModelReply, ToolDefinition
from orchestrator.models import AcceptanceCheck, TaskId, TaskSpec

TASK = TaskSpec(
    id=TaskId("build"),
    instruction="Build it.",
    deps=(TaskId("fetch"),),
    tools=("shell",),
    produces="a wheel",
    check=AcceptanceCheck(command="ls dist/*.whl"),
    tier_hint="base",
    est_latency_s=12.0,
)


def _objects(node: object) -> list[dict[str, JSONValue]]:
    """Every JSON-schema object node under `node`."""
    found: list[dict[str, JSONValue]] = []
    if isinstance(node, dict):
        mapping = cast(dict[str, JSONValue], node)
        if mapping.get("type") == "object":
            found.append(mapping)
        for value in mapping.values():
            found.extend(_objects(value))
    elif isinstance(node, list):
        for value in cast(list[JSONValue], node):
            found.extend(_objects(value))
    return found


@pytest.mark.parametrize("schema", [PlanOut, ReviewOut, TaskOut], ids=lambda s: s.__name__)
def test_schemas_are_strict_mode_ready(schema: type[BaseModel]) -> None:
    """Every object forbids extras and requires all its fields; nothing relies on defaults."""
    objects = _objects(schema.model_json_schema())

    assert objects
    for node in objects:
        assert node["additionalProperties"] is False
        assert sorted(node["required"]) == sorted(node["properties"])
        assert all("default" not in p for p in node["properties"].values())


def test_task_conversion_round_trips() -> None:
    assert to_task_spec(to_task_out(TASK)) == TASK


def test_task_conversion_strips_and_drops_blanks() -> None:
    out = TaskOut(
        id=" a ",
        instruction=" go ",
        deps=[" b "],
        tools=[" shell"],
        produces=" x ",
        check_command=" ",
        tier="",
        est_seconds=None,
    )

    assert to_task_spec(out) == TaskSpec(
        id=TaskId("a"),
        instruction="go",
        deps=(TaskId("b"),),
        tools=("shell",),
        produces="x",
    )


def test_parse_reply_prefers_parsed_output() -> None:
    parsed = PlanOut(rationale="r", tasks=[])

    assert parse_reply(ModelReply(text="garbage", parsed=parsed), PlanOut) is parsed


def test_parse_reply_finds_json_in_fences() -> None:
    text = 'Sure! {not json} ```json\n{"rationale": "r", "tasks": []}\n```'

    assert parse_reply(ModelReply(text=text), PlanOut) == PlanOut(rationale="r", tasks=[])


def test_parse_reply_reports_the_mismatch() -> None:
    text = json.dumps({"rationale": "r", "tasks": [{"id": "a"}]})

    expected = r"PlanOut \(tasks\.0\.instruction: Field required"
    with pytest.raises(ModelBehaviorError, match=expected):
        parse_reply(ModelReply(text=text), PlanOut)


def test_parse_reply_without_json_raises() -> None:
    with pytest.raises(ModelBehaviorError, match="reply was 'I cannot help'"):
        parse_reply(ModelReply(text="I cannot help"), PlanOut)


def test_render_tools_sorts_and_flattens() -> None:
    tools = (
        ToolDefinition(name="shell", description="Run\n  a command. " + "y" * 500),
        ToolDefinition(name="apply_patch", description="Edit files.", kind="apply_patch"),
    )

    lines = render_tools(tools).splitlines()

    assert lines[1] == "- apply_patch: Edit files."
    assert lines[2].startswith("- shell: Run a command. yyy")
    assert lines[2].endswith("...")
    assert len(lines[2]) == len("- shell: ") + 400
