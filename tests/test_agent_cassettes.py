"""The shipped cassettes (examples/agents/cassettes) replay through the real command line: each
example agent, run with `--replay` on a fresh copy of the fixture it was recorded on, with no key
and nothing listening at the base URL, reproduces its recorded `--json` result line and makes
exactly the recorded model calls.

The cassettes were recorded from the embedded 135M model (see the folder's README.md), which is
unpriced: every cost is 0.0 with `unpriced_models` naming it, so costs compare exactly here;
tests/test_cli_replay.py covers a priced run's cost.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from orchestrator.cassette import read_cassette

from .cli_harness import UNREACHABLE, Cli, orchestrator
from .test_agent_plugin import Tracker, plugin_env
from .test_agent_plugin import plugin_site as plugin_site  # a fixture: the plugin installed apart
from .test_agent_plugin import tracker as tracker  # a fixture: its tracker on a free port

ROOT = Path(__file__).parents[1]
CASSETTES = ROOT / "examples" / "agents" / "cassettes"
FIXTURES = Path(__file__).parent / "fixtures"
EMBEDDED = "smollm2-135m"
_VARYING = ("run_id", "run_dir", "duration_s", "started_at", "finished_at", "elapsed_s")
"""Result fields that differ between any two runs (ids, places, clocks)."""
_PYTEST_CLOCK = re.compile(r" in \d+\.\d+s\b")
"""pytest's summary line ("1 failed in 0.03s"), quoted in failed checks' reasons."""


@dataclass(frozen=True, slots=True)
class Recorded:
    """One shipped cassette: the agent, the fixture it ran on and its arguments."""

    agent: str
    fixture: str | None
    """A folder of tests/fixtures copied fresh for the run; None: an empty folder."""
    arguments: tuple[str, ...] = ()

    @property
    def cassette(self) -> Path:
        return CASSETTES / f"{self.agent}.jsonl"

    @property
    def result(self) -> dict[str, Any]:
        line = (CASSETTES / f"{self.agent}.result.json").read_text(encoding="utf-8")
        return cast("dict[str, Any]", json.loads(line))


def coder_change() -> str:
    return (FIXTURES / "coder_pkg" / "CHANGE.md").read_text(encoding="utf-8")


SHIPPED = (
    Recorded("test-fixer", "buggy_pkg"),
    Recorded("coder", "coder_pkg", (coder_change(),)),
    Recorded("repo-explainer", "multi_repo"),
)
"""The agents of `orchestrator.example_agents`; issue-triage (a plugin) has its own test."""


def fresh_copy(fixture: str | None, tmp_path: Path) -> Path:
    """The fixture as the recording found it (no caches from earlier runs)."""
    work = tmp_path / "work"
    if fixture is None:
        work.mkdir()
        return work
    junk = shutil.ignore_patterns("__pycache__", ".pytest_cache", ".orchestrator")
    return Path(shutil.copytree(FIXTURES / fixture, work, ignore=junk))


def replay(recorded: Recorded, work: Path, env: dict[str, str] | None = None) -> Cli:
    """`orchestrator agent NAME ARGS --replay CASSETTE --json` with no key and a dead base URL."""
    return orchestrator(
        *("agent", recorded.agent, *recorded.arguments, "--workdir", str(work)),
        *("--replay", str(recorded.cassette), "--json"),
        cwd=work.parent,
        env={"OPENAI_API_KEY": "", "OPENAI_BASE_URL": UNREACHABLE, **(env or {})},
        timeout_s=120,
    )


def steady(value: Any) -> Any:
    """`value` without what differs between any two runs, at any depth."""
    if isinstance(value, dict):
        items = cast("dict[str, Any]", value).items()
        return {k: steady(v) for k, v in items if k not in _VARYING}
    if isinstance(value, list):
        return [steady(v) for v in cast("list[Any]", value)]
    if isinstance(value, str):
        return _PYTEST_CLOCK.sub(" in <t>s", value)
    return value


def events(stdout: str) -> list[dict[str, Any]]:
    """The JSON lines of a `--json` run: its events, then its result line."""
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def assert_replays(recorded: Recorded, cli: Cli) -> None:
    """The replay ended like the recording, with the same result line and the same calls."""
    assert cli.code in (0, 1), cli.stderr[-3000:]
    assert "Traceback" not in cli.stderr, cli.stderr[-3000:]
    assert cli.error_lines() == [], cli.stderr[-3000:]  # no ReplayMismatchError, no other error
    lines = events(cli.stdout)
    replayed = lines[-1]
    assert replayed["kind"] == "result"
    expected = recorded.result
    # Every call the cassette holds was asked for, once: the replay made exactly those calls.
    _, calls = read_cassette(recorded.cassette)
    made = Counter(
        (e["role"], e.get("task_id"), e["tier"]) for e in lines if e["kind"] == "model_called"
    )
    assert made == Counter((c.role, c.task, c.tier) for c in calls)
    assert replayed["usage"]["tokens"]["requests"] == len(calls)
    # Status, task statuses and outputs, tokens and cost: all of the line, clocks and ids aside.
    assert replayed["status"] == expected["status"]
    assert {k: r["kind"] for k, r in replayed["results"].items()} == {
        k: r["kind"] for k, r in expected["results"].items()
    }
    assert replayed["usage"] == expected["usage"]
    assert replayed["usage"]["unpriced_models"] == [EMBEDDED]
    assert steady(replayed) == steady(expected)


@pytest.mark.timeout(150)
@pytest.mark.parametrize("recorded", SHIPPED, ids=lambda r: r.agent)
def test_shipped_cassette_replays_to_its_recorded_result(
    recorded: Recorded, tmp_path: Path
) -> None:
    work = fresh_copy(recorded.fixture, tmp_path)

    cli = replay(recorded, work)

    assert_replays(recorded, cli)


@pytest.mark.timeout(240)
def test_shipped_issue_triage_cassette_replays_with_its_plugin_and_tracker(
    plugin_site: Path,
    tracker: Tracker,
    tmp_path: Path,
) -> None:
    recorded = Recorded("issue-triage", None)
    work = fresh_copy(recorded.fixture, tmp_path)

    cli = replay(recorded, work, plugin_env(plugin_site, TRACKER_URL=tracker.url))

    assert_replays(recorded, cli)
    # The plugin's tool really ran against the tracker, once per recorded call of it (the
    # replayed reply asks for it; the tool itself is not replayed).
    _, calls = read_cassette(recorded.cassette)
    asked = [t for c in calls if c.reply for t in c.reply.tool_calls]
    assert asked and {t.name for t in asked} == {"list_open_issues"}
    requests = tracker.requests()
    assert len(requests) == len(asked)
    assert all(r["path"].startswith("/issues?state=open") for r in requests), requests
