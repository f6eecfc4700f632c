"""Each example agent, and the plugin's issue-triage, run through the real command line with the
embedded 135M model (no key, no base URL) on a fresh copy of its fixture, to the end: exit status
0 or 1 (never a usage error or a crash), no traceback, its report printed, its result line
parseable. The repo-explainer also leaves every file of its fixture as it was. The model is a
toy, so what the agents do is not judged here, only that they get through.

Bound: `--models smollm2-135m`, a ladder of one rung. The embedded backend's default ladder is
the same 135M model three times, so escalating a task only repeats its attempts on the same model
(measured: test-fixer took about 4 minutes with three rungs); with one rung a task that fails on
it fails, and each agent ends in about a minute or two. Everything else is as a user runs it.
Measured on two shared cores: test-fixer 137 s, coder 102 s, repo-explainer 100 s (its replay
about 1 s of that), issue-triage 49 s; about 6.5 minutes for the module.

The repo-explainer's smoke also records its run and replays that fresh cassette, offline: record
and replay on a real model's (unscripted, unpredictable) calls.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from .cli_harness import UNREACHABLE
from .test_agent_cassettes import (
    EMBEDDED,
    SHIPPED,
    Recorded,
    events,
    fresh_copy,
    steady,
)
from .test_agent_plugin import Tracker, plugin_env
from .test_agent_plugin import plugin_site as plugin_site  # a fixture: the plugin installed apart
from .test_agent_plugin import tracker as tracker  # a fixture: its tracker on a free port

pytestmark = pytest.mark.local_model

ONE_RUNG = ("--models", EMBEDDED)
"""The bound: the embedded model once, not three times over (see the module docstring)."""
RUN_TIMEOUT_S = 360.0
"""A run's limit here: over 2.5 times the slowest measured run (137 s, test-fixer)."""
REPORT_START = {
    "test-fixer": "test-fixer: ",
    "coder": "# Coder: ",
    "repo-explainer": "# Repository map: ",
    "issue-triage": "# Issue triage: ",
}
"""How each agent's report begins (printed on stderr with --json, the result line on stdout)."""


def newcomer_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without a key, a base URL or any orchestrator setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ORCH_"))}
    return env | (extra or {})


def run_cli(
    recorded: Recorded, work: Path, *flags: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`orchestrator agent NAME ARGS --workdir WORK --json FLAGS` as a newcomer runs it."""
    cli = Path(sys.executable).with_name("orchestrator")
    started = time.monotonic()
    done = subprocess.run(
        [str(cli), "agent", recorded.agent, *recorded.arguments, "--workdir", str(work), *flags],
        cwd=work.parent,
        env=newcomer_environment(env),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    print(done.stderr[-4000:], f"{recorded.agent} took {time.monotonic() - started:.0f}s", sep="\n")
    return done


def assert_got_through(recorded: Recorded, done: subprocess.CompletedProcess[str]) -> Any:
    """Exit 0 or 1, no traceback or error line, the report on stderr; the parsed result line."""
    assert done.returncode in (0, 1), done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [], errors
    assert "embedded 135M model" in done.stderr
    assert f"\n{REPORT_START[recorded.agent]}" in f"\n{done.stderr}", done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["kind"] == "result"
    assert result["status"] in ("completed", "partial", "failed"), result["status"]
    assert result["usage"]["tokens"]["requests"] >= 2  # at least planned and answered
    return result


def snapshot(root: Path) -> dict[str, str]:
    """Every file under `root` by its content hash, the run's own records aside."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".orchestrator" not in p.relative_to(root).parts
    }


AGENTS = {r.agent: r for r in SHIPPED}


@pytest.mark.timeout(RUN_TIMEOUT_S + 30)
@pytest.mark.parametrize("name", ["test-fixer", "coder"])
def test_agent_gets_through_a_run_on_the_embedded_model(name: str, tmp_path: Path) -> None:
    recorded = AGENTS[name]
    work = fresh_copy(recorded.fixture, tmp_path)

    done = run_cli(recorded, work, "--json", *ONE_RUNG)

    assert_got_through(recorded, done)


@pytest.mark.timeout(RUN_TIMEOUT_S + 60)
def test_repo_explainer_reads_only_and_its_recorded_run_replays(tmp_path: Path) -> None:
    recorded = AGENTS["repo-explainer"]
    work = fresh_copy(recorded.fixture, tmp_path / "recorded")
    before = snapshot(work)
    cassette = tmp_path / "explainer.jsonl"

    done = run_cli(recorded, work, "--json", *ONE_RUNG, "--record", str(cassette))

    result = assert_got_through(recorded, done)
    after = snapshot(work)
    assert after.pop("REPO_MAP.md", None) is not None  # its report, and nothing else
    assert after == before
    # The same run again from its cassette, with nothing to answer but the cassette.
    again = fresh_copy(recorded.fixture, tmp_path / "replayed")
    offline = {"OPENAI_API_KEY": "", "OPENAI_BASE_URL": UNREACHABLE}
    replayed = run_cli(recorded, again, "--json", "--replay", str(cassette), env=offline)
    assert replayed.returncode == done.returncode, replayed.stderr[-3000:]
    assert "Traceback" not in replayed.stderr
    assert steady(events(replayed.stdout)[-1]) == steady(result)
    assert (again / "REPO_MAP.md").read_text() == (work / "REPO_MAP.md").read_text()


@pytest.mark.timeout(RUN_TIMEOUT_S + 120)
def test_issue_triage_gets_through_a_run_on_the_embedded_model(
    plugin_site: Path,
    tracker: Tracker,
    tmp_path: Path,
) -> None:
    recorded = Recorded("issue-triage", None)
    work = fresh_copy(None, tmp_path)
    env = plugin_env(plugin_site, TRACKER_URL=tracker.url)

    done = run_cli(recorded, work, "--json", *ONE_RUNG, env=env)

    assert_got_through(recorded, done)
