"""The public reply builders of `orchestrator.testing`: each role's reply in the shape it expects."""

from __future__ import annotations

from pathlib import Path

from orchestrator import ModelReply, Orchestrator, Settings, tool
from orchestrator.testing import (
    ScriptedModel,
    accept_all,
    answer,
    leaf_report,
    plan_reply,
    review_reply,
    task,
    tool_call,
    tool_then_report,
    verdict,
)

COUNTED: list[str] = []


@tool
def count(text: str) -> int:
    """Count the words of a text."""
    COUNTED.append(text)
    return len(text.split())


def orchestrator(model: ScriptedModel, tmp_path: Path) -> Orchestrator:
    return Orchestrator(
        client=model,
        workdir=tmp_path,
        tools=[count],
        builtin_tools=False,
        settings=Settings(plugins=False),
    )


def test_task_fills_what_is_not_given_from_the_id() -> None:
    built = task("b", "a", tools=["count"], check="true", tier="base")

    assert built.model_dump() == {
        "id": "b",
        "instruction": "do b",
        "deps": ["a"],
        "tools": ["count"],
        "produces": "b result",
        "check_command": "true",
        "tier": "base",
        "est_seconds": None,
    }


def test_plan_reply_keeps_the_tasks_in_order() -> None:
    built = plan_reply(task("a"), task("b", "a"), rationale="two steps")

    assert (built.rationale, [t.id for t in built.tasks]) == ("two steps", ["a", "b"])


def test_leaf_report_carries_named_outputs() -> None:
    built = leaf_report("counted", total="3")

    assert (built.status, built.summary) == ("done", "counted")
    assert [(o.name, o.value) for o in built.outputs] == [("total", "3")]


def test_review_reply_holds_one_verdict_per_task() -> None:
    built = review_reply(verdict("a", "accept"), verdict("b", "retry", "again"))

    assert [(v.task_id, v.verdict, v.feedback) for v in built.verdicts] == [
        ("a", "accept", ""),
        ("b", "retry", "again"),
    ]


async def test_scripted_run_with_builders_is_a_few_lines(tmp_path: Path) -> None:
    model = (
        ScriptedModel()
        .script("planner", plan_reply(task("a", tools=["count"]), task("b", "a")))
        .script("worker", tool_call("count", {"text": "one two"}), leaf_report("2"), task="a")
        .script("worker", leaf_report("summed", total="2"), task="b")
        .respond("reviewer", accept_all())
        .script("synthesizer", answer("Two words."))
    )

    result = await orchestrator(model, tmp_path).run("count")

    assert result.status == "completed"
    assert result.answer.startswith("Two words.")
    assert [m.content for m in model.calls_for("worker", "a")[1].messages if m.role == "tool"] == [
        "2"
    ]
    model.assert_complete()


async def test_accept_all_accepts_every_task_of_every_batch(tmp_path: Path) -> None:
    model = (
        ScriptedModel()
        .script("planner", plan_reply(task("a"), task("b"), task("c")))
        .respond("worker", lambda request: ModelReply(text=leaf_report().model_dump_json()))
        .respond("reviewer", accept_all())
        .script("synthesizer", answer())
    )

    result = await orchestrator(model, tmp_path).run("three")

    assert sorted(result.results) == ["a", "b", "c"]
    assert all(r.kind == "succeeded" for r in result.results.values())


async def test_tool_then_report_calls_the_tool_once_per_task(tmp_path: Path) -> None:
    COUNTED.clear()
    model = (
        ScriptedModel()
        .script("planner", plan_reply(task("a", tools=["count"]), task("b", tools=["count"])))
        .respond("worker", tool_then_report("count", {"text": "x y z"}, summary="counted"))
        .respond("reviewer", accept_all())
        .script("synthesizer", answer())
    )

    result = await orchestrator(model, tmp_path).run("count twice")

    assert COUNTED == ["x y z", "x y z"]
    assert {tid: r.kind for tid, r in result.results.items()} == {
        "a": "succeeded",
        "b": "succeeded",
    }
