from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from orchestrator.agents.reviewer import (
    CACHE_KEY,
    DEFAULT_RETRY_FEEDBACK,
    REVIEWER_PROMPT,
    BatchReviewer,
    ReviewOut,
)
from orchestrator.agents.schemas import render_tasks
from orchestrator.errors import ModelBehaviorError
from orchestrator.llm import ModelReply, SystemMessage, ToolDefinition, UserMessage
from orchestrator.models import AcceptanceCheck, Plan, TaskId, TaskSpec
from orchestrator.roles import (
    Accept,
    EscalateTask,
    LeafReport,
    ReplanTask,
    RetryTask,
    ReviewItem,
    ReviewRequest,
)
from orchestrator.testing import ScriptedModel, text_reply

GOAL = "Summarize the three reports"
TASKS = (
    TaskSpec(id=TaskId("a"), instruction="Summarize report A.", produces="a summary"),
    TaskSpec(
        id=TaskId("b"),
        instruction="Summarize report B.",
        produces="a summary",
        check=AcceptanceCheck(command="test -s b.md"),
    ),
    TaskSpec(id=TaskId("c"), instruction="Summarize report C.", produces="a summary"),
)
PLAN = Plan(goal=GOAL, tasks=TASKS, rationale="one task per report")
TOOLS = (ToolDefinition(name="read_file", description="Read a file."),)


def _item(task: TaskSpec, summary: str = "done") -> ReviewItem:
    return ReviewItem(
        task=task,
        report=LeafReport(status="done", summary=summary),
        tier="mini",
        attempt=1,
    )


def _request(*items: ReviewItem) -> ReviewRequest:
    return ReviewRequest(goal=GOAL, plan=PLAN, items=items, model="review-model", tools=TOOLS)


def _new_task(task_id: str, deps: list[str] | None = None) -> dict[str, object]:
    return {
        "id": task_id,
        "instruction": f"Do {task_id}.",
        "deps": deps or [],
        "tools": ["read_file"],
        "produces": "text",
        "check_command": None,
        "tier": "base",
        "est_seconds": None,
    }


def _verdict(
    task_id: str,
    verdict: str,
    feedback: str = "",
    new_tasks: list[dict[str, object]] | None = None,
) -> dict[str, object]:
    return {"task_id": task_id, "verdict": verdict, "feedback": feedback, "new_tasks": new_tasks}


def _reply(*verdicts: dict[str, object]) -> ModelReply:
    return text_reply(json.dumps({"verdicts": list(verdicts)}))


def _user_text(model: ScriptedModel, index: int = 0) -> str:
    message = model.calls_for("reviewer")[index].messages[1]
    assert isinstance(message, UserMessage)
    return message.content


@pytest.fixture
def model() -> Iterator[ScriptedModel]:
    scripted = ScriptedModel()
    yield scripted
    scripted.assert_complete()


async def test_reviewer_request_fields(model: ScriptedModel) -> None:
    model.script("reviewer", _reply())

    await BatchReviewer(temperature=0.0, max_output_tokens=300).review(
        _request(_item(TASKS[0])), model
    )

    (call,) = model.calls_for("reviewer")
    assert call.role == "reviewer"
    assert call.model == "review-model"
    assert call.output_type is ReviewOut
    assert call.temperature == 0.0
    assert call.max_output_tokens == 300
    assert call.prompt_cache_key == CACHE_KEY == "orch-reviewer"
    assert call.messages[0] == SystemMessage(content=REVIEWER_PROMPT)
    assert len(call.messages) == 2


async def test_reviewer_batches_share_system_prompt_and_prefix(model: ScriptedModel) -> None:
    """Goal and plan come before the batch, so two batches of one run share a long prefix."""
    model.script("reviewer", _reply(), _reply())
    reviewer = BatchReviewer()

    await reviewer.review(_request(_item(TASKS[0], "first batch")), model)
    await reviewer.review(_request(_item(TASKS[1]), _item(TASKS[2])), model)

    first, second = model.calls_for("reviewer")
    assert first.messages[0] == second.messages[0]
    assert first.prompt_cache_key == second.prompt_cache_key
    one, two = _user_text(model, 0), _user_text(model, 1)
    prefix = one[: one.index("Tasks under review")]
    assert two.startswith(prefix)
    assert "- read_file: Read a file." in prefix
    assert f"Goal:\n{GOAL}" in prefix
    assert render_tasks(TASKS) in prefix
    assert "first batch" not in prefix
    assert "first batch" in one


async def test_reviewer_converts_each_verdict(model: ScriptedModel) -> None:
    model.script(
        "reviewer",
        _reply(
            _verdict("a", "accept", " fine "),
            _verdict("b", "retry", "Cite page numbers."),
            _verdict("c", "escalate", "Needs judgement."),
        ),
        _reply(_verdict("a", "replan", "Split it.", [_new_task("a1"), _new_task("a2", ["a1"])])),
    )
    reviewer = BatchReviewer()

    verdicts = await reviewer.review(_request(*(_item(t) for t in TASKS)), model)
    (replan,) = await reviewer.review(_request(_item(TASKS[0])), model)

    assert verdicts == (
        Accept(task_id=TaskId("a"), feedback="fine"),
        RetryTask(task_id=TaskId("b"), feedback="Cite page numbers."),
        EscalateTask(task_id=TaskId("c"), feedback="Needs judgement."),
    )
    new = (
        TaskSpec(
            id=TaskId("a1"), instruction="Do a1.", tools=("read_file",), produces="text",
            tier_hint="base",
        ),
        TaskSpec(
            id=TaskId("a2"), instruction="Do a2.", deps=(TaskId("a1"),), tools=("read_file",),
            produces="text", tier_hint="base",
        ),
    )
    assert replan == ReplanTask(task_id=TaskId("a"), feedback="Split it.", new_tasks=new)
    assert isinstance(replan, ReplanTask)
    assert replan.keep is False


async def test_reviewer_drops_verdicts_outside_the_batch(model: ScriptedModel) -> None:
    model.script(
        "reviewer",
        _reply(
            _verdict("c", "retry", "c is in the plan but not in this batch"),
            _verdict("zzz", "escalate", "unknown task"),
            _verdict("a", "retry", "Too short."),
        ),
    )

    verdicts = await BatchReviewer().review(_request(_item(TASKS[0]), _item(TASKS[1])), model)

    assert verdicts == (RetryTask(task_id=TaskId("a"), feedback="Too short."),)


async def test_reviewer_omits_tasks_without_verdict(model: ScriptedModel) -> None:
    model.script("reviewer", _reply())

    verdicts = await BatchReviewer().review(_request(_item(TASKS[0]), _item(TASKS[1])), model)

    assert verdicts == ()


@pytest.mark.parametrize("new_tasks", [None, []], ids=["null", "empty"])
async def test_reviewer_replan_without_tasks_becomes_retry(
    model: ScriptedModel, new_tasks: list[dict[str, object]] | None
) -> None:
    model.script("reviewer", _reply(_verdict("a", "replan", "Wrong approach.", new_tasks)))

    verdicts = await BatchReviewer().review(_request(_item(TASKS[0])), model)

    assert verdicts == (RetryTask(task_id=TaskId("a"), feedback="Wrong approach."),)


async def test_reviewer_retry_without_feedback_gets_default(model: ScriptedModel) -> None:
    model.script("reviewer", _reply(_verdict("a", "retry", "  ")))

    verdicts = await BatchReviewer().review(_request(_item(TASKS[0])), model)

    assert verdicts == (RetryTask(task_id=TaskId("a"), feedback=DEFAULT_RETRY_FEEDBACK),)


async def test_reviewer_first_verdict_per_task_wins(model: ScriptedModel) -> None:
    model.script("reviewer", _reply(_verdict("a", "accept"), _verdict("a", "retry", "again")))

    verdicts = await BatchReviewer().review(_request(_item(TASKS[0])), model)

    assert verdicts == (Accept(task_id=TaskId("a")),)


async def test_reviewer_empty_batch_makes_no_call(model: ScriptedModel) -> None:
    assert await BatchReviewer().review(_request(), model) == ()
    assert model.calls == []


async def test_reviewer_malformed_reply_raises(model: ScriptedModel) -> None:
    model.script("reviewer", text_reply('{"verdicts": [{"task_id": "a", "verdict": "maybe"}]}'))

    with pytest.raises(ModelBehaviorError):
        await BatchReviewer().review(_request(_item(TASKS[0])), model)


async def test_reviewer_shows_report_and_passed_check(model: ScriptedModel) -> None:
    model.script("reviewer", _reply())
    item = ReviewItem(
        task=TASKS[1],
        report=LeafReport(
            status="ambiguous",
            summary="Wrote b.md",
            outputs={"summary": "B says " + "x" * 50, "path": "b.md"},
            confidence=0.4,
        ),
        tier="base",
        attempt=2,
        check_output="ok\n",
    )

    await BatchReviewer(max_output_chars=20).review(_request(item), model)

    text = _user_text(model)
    batch = text[text.index("Tasks under review (1)") :]
    assert "### b (tier base, attempt 2)" in batch
    assert "Status: ambiguous (confidence 0.4)" in batch
    assert "Summary: Wrote b.md" in batch
    assert '- summary: "B says xxxxxxxxxxxxx... [37 more characters cut]"' in batch
    assert '- path: "b.md"' in batch
    assert "Acceptance check `test -s b.md` PASSED. Its output:\nok" in batch


async def test_reviewer_without_check_output_claims_no_check(model: ScriptedModel) -> None:
    model.script("reviewer", _reply())

    await BatchReviewer().review(_request(_item(TASKS[1])), model)

    assert "PASSED" not in _user_text(model)
    assert "Outputs: none" in _user_text(model)


async def test_reviewer_shows_a_task_missing_from_the_plan(model: ScriptedModel) -> None:
    """A task added by a replan after the plan was captured is shown in full with its result."""
    extra = TaskSpec(id=TaskId("late"), instruction="Added later.", produces="notes")
    model.script("reviewer", _reply())

    await BatchReviewer().review(_request(_item(extra), _item(TASKS[0])), model)

    text = _user_text(model)
    assert f"Task: {render_tasks((extra,))}" in text
    assert text.count("Task: ") == 1
