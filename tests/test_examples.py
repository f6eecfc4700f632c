"""Every example runs end to end with a ScriptedModel (no network, no key)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.llm import ModelReply, ModelRequest
from orchestrator.testing import ScriptedModel, tool_call

from .helpers import accept_all, leaf, plan, task


async def test_examples_word_counts_runs_the_whole_loop(
    scripted: ScriptedModel,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from examples import word_counts

    monkeypatch.chdir(tmp_path)
    scripted.script("planner", plan(*(task(f"count_{i}", tools=["word_count"]) for i in (1, 2))))

    def worker(request: ModelRequest) -> ModelReply:
        results = [m for m in request.messages if m.role == "tool"]
        if results:
            return ModelReply(
                text=leaf(f"{results[0].content} words", count=results[0].content).model_dump_json()
            )  # type: ignore[union-attr]
        sentence = int(str(request.task_id)[-1])
        return tool_call("word_count", {"sentence": sentence}, call_id=f"c{sentence}")

    scripted.respond("worker", worker).respond("reviewer", accept_all)
    scripted.respond("synthesizer", lambda r: ModelReply(text="9 and 6 words"))
    assert await word_counts.main(scripted) == 0
    out = capsys.readouterr().out
    assert "run " in out and "completed" in out and "[count_2]" in out
    assert "count: 9" in out and "count: 6" in out
    tool_results = [
        m.content for c in scripted.calls for m in c.request.messages[-1:] if m.role == "tool"
    ]
    assert sorted(tool_results) == ["6", "9"]
    assert any(c.request.role == "reviewer" for c in scripted.calls)  # a real model is reviewed
    events = list(tmp_path.glob(".orchestrator/runs/*/events.jsonl"))
    assert len(events) == 1
    kinds = [json.loads(line)["kind"] for line in events[0].read_text().splitlines()]
    assert kinds.count("tool_called") == 2 and kinds[-1] == "run_finished"


def test_examples_word_counts_tool_counts_a_sentence_by_number() -> None:
    from examples import word_counts
    from orchestrator.toolkit import ToolRetry

    assert [word_counts.word_count(1), word_counts.word_count(2)] == [9, 6]
    with pytest.raises(ToolRetry, match="sentences 1 to 2"):
        word_counts.word_count(3)


@pytest.mark.parametrize(
    ("key", "with_client", "review"),
    [(None, False, "none"), ("sk-test", False, "all"), (None, True, "all")],
    ids=["embedded-model", "api-key", "given-client"],
)
def test_examples_word_counts_reviews_unless_on_the_embedded_model(
    scripted: ScriptedModel,
    monkeypatch: pytest.MonkeyPatch,
    key: str | None,
    with_client: bool,
    review: str,
) -> None:
    from examples import word_counts

    if key is not None:
        monkeypatch.setenv("OPENAI_API_KEY", key)
    assert word_counts.review_for(scripted if with_client else None) == review


async def test_examples_summarise_markdown_runs(
    scripted: ScriptedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from examples import summarise_markdown

    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.md").write_text("# A\nshort\n")
    (tmp_path / "b.md").write_text("# B\nmuch longer text here\n")
    scripted.script(
        "planner",
        plan(
            task("read_a", tools=["read_file"]),
            task("read_b", tools=["read_file"]),
            task("compare", "read_a", "read_b", tools=["word_count"]),
        ),
    )

    def worker(request: ModelRequest) -> ModelReply:
        if any(m.role == "tool" for m in request.messages):
            return ModelReply(text=leaf("done").model_dump_json())
        if request.task_id == "compare":
            return tool_call("word_count", {"text": "much longer text here"})
        name = "a.md" if request.task_id == "read_a" else "b.md"
        return tool_call("read_file", {"path": name, "start_line": None, "end_line": None})

    scripted.respond("worker", worker).respond("reviewer", accept_all)
    scripted.respond("synthesizer", lambda r: ModelReply(text="b.md is the longest"))
    assert await summarise_markdown.main(scripted) == 0
