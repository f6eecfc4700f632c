"""The command line's front door: what it refuses before anything starts, and how every error of
a run reaches the user (one line, the documented exit status, a traceback only with --debug).

The real CLI runs in a subprocess, against a loopback OpenAI-protocol server where a run is needed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.cli_errors import EXIT_STATUSES, UsageError, explain
from orchestrator.errors import (
    BudgetExceededError,
    ConfigError,
    JournalError,
    ModelAPIError,
    PlanValidationError,
)

from .cli_harness import (
    UNREACHABLE,
    assert_one_error,
    backend_flags,
    orchestrator,
    server_flags,
    tree,
)
from .engine_model import EngineModel
from .fault_openai import ApiCall, Reply
from .fault_server import FaultServer

_CYCLE = (("t1", "t2"), ("t2", "t1"))


class _CyclicPlanner(EngineModel):
    """Every plan has the dependency cycle t1 → t2 → t1, however often it is repaired."""

    def __call__(self, call: ApiCall) -> Reply:
        if self.role_of(call) == "planner":
            tasks = [
                {"id": a, "instruction": "x", "deps": [b], "tools": [], "produces": "p"}
                | {"check_command": None, "tier": None, "est_seconds": None}
                for a, b in _CYCLE
            ]
            return Reply(text=json.dumps({"rationale": "r", "tasks": tasks}))
        return super().__call__(call)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer(EngineModel(2, tool="not_registered"), role_of=EngineModel.role_of) as srv:
        yield srv


# -- refused before anything starts --------------------------------------------------------------

_REFUSED = [
    pytest.param(("run", ""), "empty goal", id="empty-goal"),
    pytest.param(("run", "   "), "empty goal", id="blank-goal"),
    pytest.param(("run", "hi", "--workdir", "nowhere"), "no such workdir: nowhere", id="workdir"),
    pytest.param(("run", "hi", "--workdir", "a.txt"), "not a directory", id="workdir-file"),
    pytest.param(("run", "hi", "--models", ",,"), "empty model id", id="models-empty"),
    pytest.param(("run", "hi", "--models", "a, ,c"), "empty model id", id="models-blank"),
    pytest.param(("run", "hi", "--models", "a,b c"), "with a space", id="models-space"),
    pytest.param(("run", "sub"), "sub is a directory", id="directory-goal"),
    pytest.param(("run", "a.txt"), "a.txt is a file", id="file-goal"),
    pytest.param(("run", "missing.py"), "no such script: missing.py", id="missing-script"),
    pytest.param(("resume", "nope"), "no run nope to resume", id="resume-missing"),
    pytest.param(("resume", "nope", "--models", ","), "empty model id", id="resume-models"),
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("args", "what"), _REFUSED)
def test_cli_refuses_a_bad_command_line_in_one_line_and_creates_nothing(
    work: Path, args: tuple[str, ...], what: str
) -> None:
    (work / "a.txt").write_text("a\n")
    (work / "sub").mkdir()
    before = tree(work)
    # No server listens at the URL: a command that got past its checks would hang, not pass.
    command, *rest = args  # the flags under test come last: argparse keeps the last value
    cli = orchestrator(command, *backend_flags(UNREACHABLE), *rest, cwd=work, timeout_s=20)
    assert_one_error(cli, 2, what)
    assert tree(work) == before
    assert cli.stdout == ""


@pytest.mark.timeout(30)
def test_cli_refuses_empty_model_ids_from_the_environment(work: Path) -> None:
    env = {"ORCH_MODELS": "a,,c", "OPENAI_BASE_URL": UNREACHABLE, "ORCH_BACKEND": "compatible"}
    cli = orchestrator("run", "hi", cwd=work, env=env, timeout_s=20)
    assert_one_error(cli, 2, "bad ORCH_MODELS", "empty model id")
    assert tree(work) == []


@pytest.mark.timeout(30)
def test_cli_config_error_is_one_line_with_exit_2(work: Path) -> None:
    cli = orchestrator("run", "hi", "--backend", "openai", cwd=work, env={"OPENAI_API_KEY": ""})
    assert_one_error(cli, 2, "no API key", "OPENAI_API_KEY")
    assert "[REDACTED]" not in cli.stderr  # the advice itself must not look like a credential


@pytest.mark.timeout(40)
def test_cli_debug_adds_the_traceback(work: Path) -> None:
    for args, env in ((("run", "", "--debug"), {}), (("run", ""), {"ORCH_DEBUG": "1"})):
        cli = orchestrator(*args, cwd=work, env=env)
        assert cli.code == 2
        assert cli.stderr.startswith("Traceback (most recent call last):"), cli.stderr
        assert cli.stderr.rstrip().splitlines()[-1].startswith("error: empty goal — ")


@pytest.mark.timeout(40)
def test_cli_help_documents_the_exit_statuses_and_the_target_rules(work: Path) -> None:
    top = orchestrator("--help", cwd=work)
    run = orchestrator("run", "--help", cwd=work)
    assert top.code == run.code == 0
    flat_top, flat_run = " ".join(top.stdout.split()), " ".join(run.stdout.split())
    for text in (flat_top, flat_run):
        assert "exit status: 0 the run completed" in text
        assert "130 Ctrl-C" in text and "2 usage or configuration error" in text
    assert "an existing .py file" in flat_run and "quote a sentence" in flat_run


# -- errors of a run ---------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_cli_sentence_ending_in_py_is_a_goal(work: Path, server: FaultServer) -> None:
    cli = orchestrator("run", "Count the words of notes.py", *server_flags(server), cwd=work)
    assert cli.code == 0, cli.stderr[-3000:]
    assert ": completed" in cli.stdout
    assert [r.role for r in server.records].count("planner") == 1


@pytest.mark.timeout(60)
def test_cli_no_valid_plan_is_one_line_with_the_task_ids(work: Path) -> None:
    with FaultServer(_CyclicPlanner(2), role_of=EngineModel.role_of) as srv:
        cli = orchestrator("run", "Count.", *server_flags(srv), cwd=work)
    assert_one_error(cli, 1, "no valid plan", "dependency cycle", "(tasks: t1, t2)", alone=False)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_cli_run_stopped_by_an_error_prints_its_partial_result_then_one_line(
    work: Path, server: FaultServer, as_json: bool
) -> None:
    server.fail_role("planner", status=401)
    flags = ("--json",) if as_json else ()
    cli = orchestrator("run", "Count.", *server_flags(server), *flags, cwd=work)
    line = assert_one_error(cli, 1, "stopped by an error", "401", "API key", alone=False)
    if as_json:
        result = json.loads(cli.stdout.splitlines()[-1])  # after the events' JSON lines
        run_id, status = result["run_id"], result["status"]
    else:
        found = re.search(r"^run (\S+): (\w+)$", cli.stdout, re.MULTILINE)
        assert found is not None, cli.stdout
        run_id, status = found.groups()
    assert status == "failed"
    assert f"runs show {run_id}" in line
    assert (work / ".orchestrator" / "runs" / run_id / "result.json").is_file()


@pytest.mark.timeout(60)
def test_cli_plan_only_failure_is_one_line(work: Path) -> None:
    with FaultServer(_CyclicPlanner(2), role_of=EngineModel.role_of) as srv:
        cli = orchestrator("run", "Count.", "--plan-only", *server_flags(srv), cwd=work)
    assert_one_error(cli, 1, "no valid plan", alone=False)
    assert not (work / ".orchestrator").exists()


# -- the mapping, one error at a time ------------------------------------------------------------

_MAPPED = [
    pytest.param(
        UsageError("empty goal", fix="quote it"), 2, "error: empty goal — quote it", id="usage"
    ),
    pytest.param(
        ConfigError("bad\nsetting"), 2, "error: bad setting — fix what it names", id="config"
    ),
    pytest.param(
        JournalError("no journal"),
        2,
        "error: no journal — see `orchestrator runs list`",
        id="journal",
    ),
    pytest.param(
        PlanValidationError("cycle", task_ids=["a", "b"]),
        1,
        "error: no valid plan: cycle (tasks: a, b)",
        id="plan",
    ),
    pytest.param(
        BudgetExceededError("calls"), 1, "error: budget: calls — raise the budget", id="budget"
    ),
    pytest.param(
        ModelAPIError("down", status_code=None, retryable=True),
        1,
        "error: ModelAPIError: down — check that",
        id="model",
    ),
    pytest.param(
        ValueError("boom"), 1, "error: unexpected ValueError: boom — run with --debug", id="bug"
    ),
    pytest.param(KeyboardInterrupt(), 130, "error: interrupted", id="interrupt"),
]


@pytest.mark.parametrize(("exc", "code", "start"), _MAPPED)
def test_cli_errors_explain_each_error_in_one_line(
    exc: BaseException, code: int, start: str
) -> None:
    failure = explain(exc)
    assert failure.code == code
    assert failure.line.startswith(start), failure.line
    assert "\n" not in failure.line


def test_cli_errors_explain_a_task_group_by_its_own_error() -> None:
    """A group is explained by the orchestrator error inside it, however deep, counting the rest."""
    inner = ExceptionGroup("inner", [RuntimeError("side"), ConfigError("no key")])
    failure = explain(ExceptionGroup("outer", [inner]))
    assert failure.code == 2
    assert failure.line.startswith("error: no key (and 1 more error) — ")
    assert explain(ExceptionGroup("g", [JournalError("gone")])).line.startswith("error: gone — ")
    assert explain(BaseExceptionGroup("g", [KeyboardInterrupt()])).code == 130


def test_cli_exit_statuses_text_lists_every_status() -> None:
    for status in ("0 ", "1 ", "2 ", "128+N", "141 "):
        assert status in EXIT_STATUSES


@pytest.mark.timeout(30)
def test_cli_main_module_runs_as_the_installed_script(tmp_path: Path) -> None:
    """`python -m orchestrator.cli` and the `orchestrator` script are the same entry point."""
    script = Path(sys.executable).with_name("orchestrator")
    if not script.is_file():
        pytest.skip("the console script is not installed in this environment")
    done = subprocess.run(
        [str(script), "run", ""],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: empty goal — ")
