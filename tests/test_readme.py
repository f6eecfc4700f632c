"""The README's goal script and its test run as written: copied out of README.md and run."""

from __future__ import annotations

import re
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import cast

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def section(title: str) -> str:
    """The README's text under `## title`, up to the next `## ` heading."""
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def python_block(text: str, first_line: str) -> str:
    """The ```python block of `text` whose first line is `first_line`."""
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    found = [b for b in blocks if b.startswith(first_line + "\n")]
    assert len(found) == 1, f"no single README block starting {first_line!r}"
    return found[0]


@pytest.fixture
def goal_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory to write `goal.py` in, importable as `goal` and the current directory."""
    monkeypatch.syspath_prepend(str(tmp_path))  # pyright: ignore[reportUnknownMemberType]
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    sys.modules.pop("goal", None)


async def test_readme_goal_script_and_its_test_run_as_written(goal_module: Path) -> None:
    text = section("A goal script")
    (goal_module / "goal.py").write_text(python_block(text, "# goal.py"))
    test_block = python_block(text, "# test_goal.py (pytest; anyio's plugin runs the async test)")
    namespace: dict[str, object] = {"__name__": "test_goal"}

    exec(compile(test_block, "README.md (test_goal.py)", "exec"), namespace)
    test = cast("Callable[[], Awaitable[None]]", namespace["test_goal_counts_the_words"])
    await test()

    assert list((goal_module / ".orchestrator" / "runs").glob("*/result.json"))
