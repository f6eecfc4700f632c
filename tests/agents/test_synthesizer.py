from __future__ import annotations

from collections.abc import Iterator

import pytest

from orchestrator.agents.synthesizer import CACHE_KEY, SYNTHESIZER_PROMPT, AnswerSynthesizer
from orchestrator.errors import ModelBehaviorError
from orchestrator.llm import SystemMessage, UserMessage
from orchestrator.models import Plan, TaskId, TaskSpec
from orchestrator.roles import SynthesisRequest
from orchestrator.testing import ScriptedModel, text_reply

GOAL = "Report the repo's test status"
PLAN = Plan(
    goal=GOAL,
    tasks=(
        TaskSpec(id=TaskId("run_tests"), instruction="Run the tests.", produces="pass/fail counts"),
        TaskSpec(id=TaskId("lint"), instruction="Run ruff."),
        TaskSpec(id=TaskId("docs"), instruction="Build the docs.", deps=(TaskId("lint"),)),
    ),
)


def _request(results: dict[str, str], goal: str = GOAL) -> SynthesisRequest:
    return SynthesisRequest(
        goal=goal,
        plan=PLAN,
        results={TaskId(k): v for k, v in results.items()},
        model="synth-model",
    )


def _user_text(model: ScriptedModel, index: int = 0) -> str:
    message = model.calls_for("synthesizer")[index].messages[1]
    assert isinstance(message, UserMessage)
    return message.content


@pytest.fixture
def model() -> Iterator[ScriptedModel]:
    scripted = ScriptedModel()
    yield scripted
    scripted.assert_complete()


async def test_synthesizer_returns_the_reply_text(model: ScriptedModel) -> None:
    model.script("synthesizer", text_reply("\n  All 12 tests pass.  \n"))

    answer = await AnswerSynthesizer().synthesize(_request({"run_tests": "12 passed"}), model)

    assert answer == "All 12 tests pass."


async def test_synthesizer_request_fields(model: ScriptedModel) -> None:
    model.script("synthesizer", text_reply("a"), text_reply("b"))
    synthesizer = AnswerSynthesizer(temperature=0.0, max_output_tokens=700)

    await synthesizer.synthesize(_request({}, goal="one"), model)
    await synthesizer.synthesize(_request({}, goal="two"), model)

    first, second = model.calls_for("synthesizer")
    assert first.role == "synthesizer"
    assert first.model == "synth-model"
    assert first.output_type is None
    assert first.temperature == 0.0
    assert first.max_output_tokens == 700
    assert first.prompt_cache_key == second.prompt_cache_key == CACHE_KEY == "orch-synthesizer"
    assert first.messages[0] == second.messages[0] == SystemMessage(content=SYNTHESIZER_PROMPT)
    assert first.messages[1] != second.messages[1]


async def test_synthesizer_lists_results_in_plan_order(model: ScriptedModel) -> None:
    model.script("synthesizer", text_reply("answer"))
    results = {
        "docs": "skipped: dependency lint failed",
        "lint": "failed: ruff not installed",
        "run_tests": "12 passed, 0 failed",
        "extra_task": "added by a replan",
    }

    await AnswerSynthesizer().synthesize(_request(results), model)

    text = _user_text(model)
    assert text.startswith(f"Goal:\n{GOAL}\n\n")
    assert (
        "## run_tests\nTask: Run the tests.\nExpected: pass/fail counts\n"
        "Result: 12 passed, 0 failed"
    ) in text
    assert "## lint\nTask: Run ruff.\nResult: failed: ruff not installed" in text
    order = [text.index(f"## {name}\n") for name in ("run_tests", "lint", "docs", "extra_task")]
    assert order == sorted(order)
    assert "## extra_task\nResult: added by a replan" in text


async def test_synthesizer_marks_tasks_without_result(model: ScriptedModel) -> None:
    model.script("synthesizer", text_reply("answer"))

    await AnswerSynthesizer().synthesize(_request({"run_tests": "   "}), model)

    text = _user_text(model)
    assert text.count("Result: (no result recorded)") == 3


async def test_synthesizer_empty_reply_raises(model: ScriptedModel) -> None:
    model.script("synthesizer", text_reply("  \n"))

    with pytest.raises(ModelBehaviorError, match="empty answer"):
        await AnswerSynthesizer().synthesize(_request({}), model)
