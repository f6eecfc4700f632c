"""`orchestrator agents list` and `orchestrator agent NAME` driven as a user does: the real command
line in a subprocess, a fake OpenAI-compatible server on 127.0.0.1 playing the model."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.agent_kit import Agent, AgentJob, AgentOutcome
from orchestrator.cli_agents import agent_main, agent_parser, finish_agent
from orchestrator.cli_errors import UsageError
from orchestrator.cli_signals import Outcome
from orchestrator.models import RunId, RunResult, Usage
from orchestrator.tools.apply_patch import apply_patch
from tests.helpers import fixture_pytest_env

from .buggy_pkg_fixes import FAILING, PATCHES, SUITE, FixerServerModel, copy_fixture
from .cli_harness import (
    UNREACHABLE,
    assert_one_error,
    backend_flags,
    cli_env,
    orchestrator,
    server_flags,
    wait_for,
)
from .engine_model import EngineModel
from .fault_openai import ApiCall
from .fault_server import FaultServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return copy_fixture(tmp_path)


@pytest.fixture
def green(tmp_path: Path) -> Path:
    """The fixture with its three bugs fixed: the suite passes."""
    fixed = copy_fixture(tmp_path / "green")
    for patch in PATCHES.values():
        apply_patch(patch, fixed)
    return fixed


def _site_with_a_broken_agent(root: Path) -> dict[str, str]:
    """A distribution registering an agent whose module does not import."""
    info = root / "broken_agent-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-agent\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[orchestrator.agents]\nbroken = no_such_module:AGENT\n")
    return {"PYTHONPATH": str(root)}


def test_agents_list_shows_one_line_per_agent_and_names_a_broken_plugin(tmp_path: Path) -> None:
    cli = orchestrator("agents", "list", cwd=tmp_path, env=_site_with_a_broken_agent(tmp_path))
    assert cli.code == 0, cli.stderr
    lines = cli.stdout.splitlines()
    (fixer,) = [line for line in lines if line.startswith("test-fixer ")]
    assert "one parallel task per failure group" in fixer
    assert all("  " in line for line in lines)  # name, then the summary
    assert "warning: agent skipped: broken: ModuleNotFoundError" in cli.stderr
    assert "Traceback" not in cli.stderr


def test_agent_unknown_name_is_a_usage_error_listing_the_known_ones(tmp_path: Path) -> None:
    cli = orchestrator("agent", "nope", cwd=tmp_path)
    assert_one_error(cli, 2, "no agent 'nope'", "known agents:", "test-fixer", "agents list")


@pytest.mark.parametrize(
    ("args", "what"),
    [
        pytest.param(("--bogus",), "unrecognized arguments: --bogus", id="unknown-flag"),
        pytest.param(("--max-groups", "x"), "--max-groups: invalid int value", id="bad-value"),
        pytest.param(("--workdir", "nowhere"), "no such workdir: nowhere", id="workdir"),
        pytest.param(("--models", ","), "empty model id", id="models"),
    ],
)
def test_agent_bad_arguments_are_one_line_with_exit_2(
    tmp_path: Path, args: tuple[str, ...], what: str
) -> None:
    cli = orchestrator("agent", "test-fixer", *backend_flags(UNREACHABLE), *args, cwd=tmp_path)
    assert_one_error(cli, 2, what)


def test_agent_help_lists_its_own_arguments_and_the_run_flags(tmp_path: Path) -> None:
    cli = orchestrator("agent", "test-fixer", "--help", cwd=tmp_path)
    assert cli.code == 0
    for flag in ("--command", "--max-groups", "--workdir", "--models", "--json"):
        assert flag in cli.stdout


def test_agent_test_fixer_fixes_the_fixture_through_the_cli(repo: Path, tmp_path: Path) -> None:
    with FaultServer(FixerServerModel(), role_of=EngineModel.role_of) as server:
        cli = orchestrator(
            *("agent", "test-fixer", "--command", SUITE, "--workdir", str(repo)),
            *server_flags(server),
            cwd=tmp_path,
        )
    assert cli.code == 0, cli.stderr[-3000:]
    assert "test-fixer: 3 of 3 failure group(s) fixed." in cli.stdout
    for group, node in FAILING.items():
        assert f"- {group} ({node}) → task fix_{group} → check passed" in cli.stdout
    assert f"Whole suite (`{SUITE}`): passed." in cli.stdout
    done = subprocess.run(
        SUITE, shell=True, cwd=repo, capture_output=True, check=False, env=fixture_pytest_env()
    )
    assert done.returncode == 0, done.stdout


def test_agent_with_nothing_to_do_calls_no_model(green: Path, tmp_path: Path) -> None:
    """The suite passes: exit 0, the report says so, and the (unreachable) server is never asked."""
    cli = orchestrator(
        *("agent", "test-fixer", "--command", SUITE, "--workdir", str(green)),
        *backend_flags(UNREACHABLE),
        cwd=tmp_path,
    )
    assert (cli.code, cli.stdout) == (0, f"The test suite passes (`{SUITE}`): nothing to fix.\n")


def test_agent_json_prints_the_result_last_and_the_report_on_stderr(
    green: Path, tmp_path: Path
) -> None:
    cli = orchestrator(
        *("agent", "test-fixer", "--command", SUITE, "--workdir", str(green), "--json"),
        *backend_flags(UNREACHABLE),
        cwd=tmp_path,
    )
    assert cli.code == 0, cli.stderr
    last = json.loads(cli.stdout.splitlines()[-1])
    assert (last["kind"], last["status"]) == ("result", "completed")
    assert "nothing to fix" in cli.stderr


def test_agent_module_runs_with_python_m(green: Path, tmp_path: Path) -> None:
    module = "orchestrator.example_agents.test_fixer"
    base = [sys.executable, "-m", module, "--workdir", str(green)]
    ok = subprocess.run(
        [*base, "--command", SUITE, *backend_flags(UNREACHABLE)],
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=tmp_path,
        timeout=40,
        check=False,
    )
    assert (ok.returncode, ok.stdout.strip()) == (
        0,
        f"The test suite passes (`{SUITE}`): nothing to fix.",
    ), ok.stderr
    bad = subprocess.run(
        [*base, "--bogus"], capture_output=True, text=True, env=cli_env(), cwd=tmp_path, check=False
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: unrecognized arguments: --bogus — "), bad.stderr


def test_agent_ctrl_c_prints_the_partial_report(repo: Path, tmp_path: Path) -> None:
    """A SIGINT while the workers wait on the model: exit 130 after the report of what was done."""
    held = threading.Event()
    asked = threading.Event()

    def hold_workers(call: ApiCall, role: str | None) -> None:
        if role == "worker":
            asked.set()
            held.wait(30)

    with FaultServer(
        FixerServerModel(), role_of=EngineModel.role_of, on_request=hold_workers
    ) as srv:
        try:
            proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "orchestrator.cli", "agent", "test-fixer"),
                    *("--command", SUITE, "--workdir", str(repo), *server_flags(srv)),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=cli_env(),
                cwd=tmp_path,
            )
            assert wait_for(asked.is_set, 30), "no worker ever asked the model"
            os.kill(proc.pid, signal.SIGINT)
            stdout, stderr = proc.communicate(timeout=30)
        finally:
            held.set()
    assert proc.returncode == 130, stderr[-3000:]
    assert "test-fixer: 0 of 3 failure group(s) fixed." in stdout
    assert "Not fixed:" in stdout
    assert "not run again (the run was cancelled)" in stdout


def test_agent_run_stopped_by_an_error_prints_its_partial_result_then_one_line(
    repo: Path, tmp_path: Path
) -> None:
    with FaultServer(FixerServerModel(), role_of=EngineModel.role_of) as server:
        server.fail_role("planner", status=401)
        cli = orchestrator(
            *("agent", "test-fixer", "--command", SUITE, "--workdir", str(repo)),
            *server_flags(server),
            cwd=tmp_path,
        )
    line = assert_one_error(cli, 1, "stopped by an error", "401", "API key", alone=False)
    found = re.search(r"^run (\S+): failed$", cli.stdout, re.MULTILINE)
    assert found is not None, cli.stdout
    assert f"runs show {found.group(1)}" in line


# -- in process --------------------------------------------------------------------------------


def _agent(arguments: Callable[[argparse.ArgumentParser], None] = lambda p: None) -> Agent:
    return Agent(
        name="demo", summary="s", prepare=lambda a, w: AgentJob(goal="g"), arguments=arguments
    )


def _clashing(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir")


def test_agent_parser_refuses_an_agent_whose_arguments_clash_with_the_run_flags() -> None:
    with pytest.raises(UsageError, match="agent demo is broken"):
        agent_parser(_agent(_clashing))


def test_agent_main_reports_bad_arguments_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert agent_main(_agent(), ["--nope"]) == 2
    err = capsys.readouterr().err
    assert err == "error: unrecognized arguments: --nope — see `orchestrator agent demo --help`\n"


def test_agent_main_runs_the_agent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With argv None it reads sys.argv; a job with nothing to do prints its report, exit 0."""
    agent = Agent(
        name="idle", summary="s", prepare=lambda a, w: AgentJob(goal="g", nothing_to_do="all good")
    )
    monkeypatch.setattr(sys, "argv", ["idle", "--workdir", str(tmp_path)])
    assert agent_main(agent) == 0
    assert capsys.readouterr().out == "all good\n"


def test_finish_agent_prints_the_notice_and_the_json_result_last(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = RunResult(
        run_id=RunId("r1"),
        goal="g",
        status="completed",
        answer="a",
        plan=None,
        results={},
        usage=Usage(),
    )
    done = AgentOutcome(result=result, checks=(), report="the report", notice="a toy model")
    assert finish_agent(Outcome(value=done), as_json=True) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["run_id"] == "r1"
    assert err == "a toy model\nthe report\n"
