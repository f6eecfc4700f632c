"""The README's goal script: summarise every Markdown file in a folder and report the longest one.

Shows a user tool next to the built-in file tools, the default tier ladder and the accounting.

Run with: `orchestrator run examples/summarise_markdown.py`
(or `python -m examples.summarise_markdown`).
"""

from __future__ import annotations

import anyio

from orchestrator import ModelClient, Orchestrator, tool
from orchestrator.report import ProgressSink


@tool
def word_count(text: str) -> int:
    """Count the words in a text.

    Args:
        text: The text whose words to count.
    """
    return len(text.split())


async def main(client: ModelClient | None = None) -> int:
    orch = Orchestrator(tools=[word_count], workdir=".", client=client, sinks=[ProgressSink()])
    result = await orch.run("Summarise every Markdown file here and report the longest one")
    print(result.answer)
    print(f"cost ${result.usage.cost_usd:.4f}, escalations {result.escalations}")
    return 0 if result.status == "completed" else 1


if __name__ == "__main__":
    raise SystemExit(anyio.run(main))
