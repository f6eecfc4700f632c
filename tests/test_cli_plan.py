"""`orchestrator run --plan-only` and `--approve`, driven as a user does: the real CLI in a
subprocess against a loopback OpenAI-compatible server that plays every role."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .engine_model import TEST_API_KEY, EngineModel
from .fault_server import FaultServer

GOAL = "Count the words of two items."
TASKS = ("t0001", "t0002")
MODELS = "gpt-5.4-nano,gpt-5.4-mini,gpt-5.4"
"""Priced models, so every estimate is in dollars (the server answers any model id)."""
_TIMEOUT_S = 40.0


@dataclass(frozen=True, slots=True)
class Cli:
    code: int
    stdout: str
    stderr: str


@dataclass(frozen=True, slots=True)
class Setup:
    server: FaultServer
    workdir: Path
    run_root: Path

    def roles(self) -> list[str | None]:
        return [r.role for r in self.server.records]

    def run(self, *flags: str, stdin: str | None = None) -> Cli:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ORCH_"))}
        env |= {"OPENAI_API_KEY": TEST_API_KEY, "ORCH_RUN_ROOT": str(self.run_root)}
        done = subprocess.run(
            [
                *(sys.executable, "-m", "orchestrator.cli", "run", GOAL, *flags),
                *("--base-url", self.server.base_url, "--backend", "compatible"),
                *("--api-style", "chat", "--models", MODELS, "--workdir", str(self.workdir)),
            ],
            input=stdin,
            stdin=subprocess.DEVNULL if stdin is None else None,
            capture_output=True,
            text=True,
            env=env,
            cwd=self.workdir,
            timeout=_TIMEOUT_S,
            check=False,
        )
        return Cli(done.returncode, done.stdout, done.stderr)

    def results(self) -> list[dict[str, object]]:
        if not self.run_root.is_dir():
            return []
        found = sorted(self.run_root.glob("*/result.json"))
        return [json.loads(p.read_text()) for p in found]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    # The task's tool is not registered, so the plan gives its tasks none: each executor call
    # reports at once, and executor calls count the tasks that ran.
    model = EngineModel(len(TASKS), tool="not_a_registered_tool")
    workdir = tmp_path / "work"
    workdir.mkdir()
    with FaultServer(model, role_of=EngineModel.role_of) as server:
        yield Setup(server=server, workdir=workdir, run_root=tmp_path / "runs")


@pytest.mark.timeout(60)
def test_cli_plan_only_prints_each_estimate_and_the_total_and_runs_nothing(setup: Setup) -> None:
    cli = setup.run("--plan-only")
    assert cli.code == 0, cli.stderr[-3000:]
    assert setup.roles() == ["planner"]
    lines = cli.stdout.splitlines()
    for tid in TASKS:
        row = next(line for line in lines if line.strip().startswith(tid))
        assert "$" in row and " to " in row and "model" in row
    assert any(line.startswith("total: $") and " to $" in line for line in lines)
    assert lines[-1] == "no task was executed"
    assert not setup.run_root.exists()  # no run directory, no index


@pytest.mark.timeout(60)
@pytest.mark.parametrize("answer", ["n\n", "", "maybe\n"], ids=["no", "eof", "other"])
def test_cli_approve_not_answered_yes_executes_nothing(setup: Setup, answer: str) -> None:
    cli = setup.run("--approve", stdin=answer)
    assert cli.code == 0, cli.stderr[-3000:]
    assert "Execute this plan? [y/N]" in cli.stderr
    assert "total: $" in cli.stdout
    assert cli.stdout.rstrip().endswith("plan refused: nothing was executed")
    assert "worker" not in setup.roles() and "synthesizer" not in setup.roles()
    (result,) = setup.results()
    assert result["status"] == "cancelled" and result["stop_reason"] == "refused"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("answer", ["y\n", "yes\n"])
def test_cli_approve_answered_yes_runs_the_plan(setup: Setup, answer: str) -> None:
    cli = setup.run("--approve", stdin=answer)
    assert cli.code == 0, cli.stderr[-3000:]
    assert cli.stdout.index("total: $") < cli.stdout.index(": completed")
    assert setup.roles().count("planner") == 1
    assert setup.roles().count("worker") == len(TASKS)
    (result,) = setup.results()
    assert result["status"] == "completed"


@pytest.mark.parametrize("flag", ["--plan-only", "--approve"])
def test_cli_plan_flags_reject_a_goal_script(flag: str, tmp_path: Path) -> None:
    script = tmp_path / "goal.py"
    script.write_text("async def main() -> None:\n    raise SystemExit(3)\n")
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "run", str(script), flag],
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert flag in done.stderr and "Orchestrator.plan" in done.stderr
