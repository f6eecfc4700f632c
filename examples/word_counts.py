"""Leaves with a tool call each, reviewed and answered: sized for the embedded 135M model.

Shows the whole loop (plan → parallel leaves with a tool call each → review → answer) on a goal a
tiny local model can carry; the embedded backend sets temperature 0, capped output tokens and
compact output schemas for every role.

Run with: `orchestrator run examples/word_counts.py` (or `python -m examples.word_counts`).
"""

from __future__ import annotations

import json

import anyio

from orchestrator import ModelClient, Orchestrator, tool
from orchestrator.report import ProgressSink, render_result

SENTENCES = (
    "The quick brown fox jumps over the lazy dog",
    "Small models can still call tools",
    "Parallel leaves finish sooner",
)

GOAL = "Count the words of three sentences, each in its own task with the word_count tool:\n" + (
    "\n".join(f"- task count_{i}: count the words of: {s}" for i, s in enumerate(SENTENCES, 1))
)

# A 135M model cannot invent the plan's shape; it copies a template well. The template shows two of
# the three tasks; the model writes the plan (and is validated, run and reviewed) for real.
CONTEXT = (
    "Example reply: "
    + json.dumps(
        {
            "rationale": "one task per sentence",
            "tasks": [
                {
                    "id": f"count_{i}",
                    "instruction": f"Count the words of: {sentence}",
                    "tools": ["word_count"],
                    "produces": "the count",
                    "deps": [],
                    "check_command": None,
                    "tier": None,
                    "est_seconds": None,
                }
                for i, sentence in enumerate(SENTENCES[:2], 1)
            ],
        }
    )[:-2]
    + ', {"id": "count_3", ...}]}'
)


@tool
def word_count(text: str) -> int:
    """Count the words in a text.

    Args:
        text: The text whose words to count.
    """
    return len(text.split())


async def main(client: ModelClient | None = None) -> int:
    """Run the goal; returns 0 when every task reached a terminal state."""
    orch = Orchestrator(
        tools=[word_count],
        client=client,
        builtin_tools=False,
        sinks=[ProgressSink()],
    )
    result = await orch.run(GOAL, context=CONTEXT)
    if orch.notice:
        print(orch.notice)
    print(render_result(result))
    return 0 if result.status in ("completed", "partial") else 1


if __name__ == "__main__":
    raise SystemExit(anyio.run(main))
