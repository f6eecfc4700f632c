"""Two parallel leaves, each a tool call, then the answer: sized for the embedded 135M model.

Shows the loop (plan → parallel leaves with a tool call each → review → answer) on a goal a tiny
local model can carry: the plan is two one-line tasks, the model only names a sentence by its
number and the tool does the counting, and the answer lists each task's recorded outputs, the
tool's count among them. The embedded backend sets
temperature 0, capped output tokens and compact schemas for every role; with it the example skips
review, which a 135M model cannot do (with OPENAI_API_KEY or --base-url every task is reviewed).

Run with: `orchestrator run examples/word_counts.py` (or `python -m examples.word_counts`).
About a minute on two cores once installed.
"""

from __future__ import annotations

import json
from typing import Literal

import anyio

from orchestrator import ModelClient, Orchestrator, Settings, ToolRetry, tool
from orchestrator.backends import choose_backend
from orchestrator.report import ProgressSink, render_result

SENTENCES = (
    "The quick brown fox jumps over the lazy dog",
    "Small models can still call tools",
)

GOAL = "Count the words of both sentences with word_count, one task per sentence."

# A 135M model cannot invent a plan's shape, but it copies a short one: the context holds the whole
# plan, so the model's reply (a real, validated planner call) is that plan. It copies two tasks
# reliably and stops early on three; and it passes the right sentence number only when the
# instruction spells the call out.
PLAN = {
    "rationale": "one task per sentence",
    "tasks": [
        {
            "id": f"count_{i}",
            "instruction": f"Count the words of sentence {i}: call word_count with sentence={i}.",
            "tools": ["word_count"],
            "produces": "the count",
            "deps": [],
            "check_command": None,
            "tier": None,
            "est_seconds": None,
        }
        for i in range(1, len(SENTENCES) + 1)
    ],
}
CONTEXT = "Reply with exactly this plan: " + json.dumps(PLAN)


@tool
def word_count(sentence: int) -> int:
    """Count the words of one of the sentences.

    Args:
        sentence: The sentence's number, from 1.
    """
    if not 1 <= sentence <= len(SENTENCES):
        raise ToolRetry(f"there are sentences 1 to {len(SENTENCES)}")
    return len(SENTENCES[sentence - 1].split())


def review_for(client: ModelClient | None) -> Literal["all", "none"]:
    """No review on the embedded model: a 135M reviewer's verdicts are noise that costs retries."""
    if client is None and choose_backend(Settings.from_env()).kind == "local":
        return "none"
    return "all"


async def main(client: ModelClient | None = None) -> int:
    """Run the goal; returns 0 when every task reached a terminal state."""
    orch = Orchestrator(
        tools=[word_count],
        client=client,
        builtin_tools=False,
        review=review_for(client),
        sinks=[ProgressSink()],
    )
    result = await orch.run(GOAL, context=CONTEXT)
    if orch.notice:
        print(orch.notice)
    print(render_result(result))
    return 0 if result.status in ("completed", "partial") else 1


if __name__ == "__main__":
    raise SystemExit(anyio.run(main))
