"""The README's first command's main job, as a newcomer runs it: `orchestrator run
examples/word_counts.py` with no key, so the embedded 135M model plans, works and answers over
real HTTP, and the answer carries the counts the tool computed.

About a minute on two cores; `-m "not live"` (the README's test command and CI) runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from examples import word_counts

pytestmark = [pytest.mark.local_model, pytest.mark.timeout(300)]

EXAMPLE = Path(word_counts.__file__)


def newcomer_environment() -> dict[str, str]:
    """This environment without a key, a base URL or any orchestrator setting."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ORCH_"))} | {
        "COLUMNS": "200"
    }


def test_local_example_answer_carries_the_tool_counts(tmp_path: Path) -> None:
    cli = Path(sys.executable).with_name("orchestrator")
    started = time.monotonic()
    done = subprocess.run(
        [str(cli), "run", str(EXAMPLE)],
        cwd=tmp_path,
        env=newcomer_environment(),
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    took = time.monotonic() - started
    print(done.stdout, done.stderr, f"took {took:.0f}s", sep="\n")
    assert done.returncode == 0
    out = done.stdout
    assert "embedded 135M model" in out
    answer = out.split("answer:", 1)[1]
    for sentence in word_counts.SENTENCES:
        assert f"word_count: {len(sentence.split())}" in answer
    (run_dir,) = (p.parent for p in tmp_path.glob(".orchestrator/runs/*/result.json"))
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "completed"
    assert sorted(result["results"]) == ["count_1", "count_2"]
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    roles = {e["role"] for e in events if e["kind"] == "model_called"}
    assert {"planner", "worker", "synthesizer"} <= roles
    assert [e["is_error"] for e in events if e["kind"] == "tool_called"] == [False, False]
