"""Three leaves in parallel, one tool call each, reviewed and answered: sized for the embedded 135M model.

Shows the whole loop (plan → parallel leaves with a tool call each → review → answer) on a goal a
tiny local model can carry, with temperature 0 and capped output tokens.

Run with: `orchestrator run examples/word_counts.py` (or `python -m examples.word_counts`).
"""

from __future__ import annotations

import anyio

from orchestrator import ModelClient, Orchestrator, RoleOptions, tool
from orchestrator.report import ProgressSink, render_result

SENTENCES = (
    "The quick brown fox jumps over the lazy dog",
    "Small models can still call tools",
    "Parallel leaves finish sooner",
)

GOAL = (
    "Count the words of three sentences. Make exactly three tasks, ids count_1, count_2 and "
    "count_3, with no deps; each task uses the word_count tool on one sentence.\n"
    + "\n".join(f"Sentence {i}: {s}" for i, s in enumerate(SENTENCES, 1))
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
        role_options=RoleOptions(temperature=0.0, max_output_tokens=400),
    )
    result = await orch.run(GOAL)
    if orch.notice:
        print(orch.notice)
    print(render_result(result))
    return 0 if result.status in ("completed", "partial") else 1


if __name__ == "__main__":
    raise SystemExit(anyio.run(main))
