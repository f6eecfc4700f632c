"""The `shell` Tool adapter: strict function form, Responses native form, refusals as output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.llm import ToolCall
from orchestrator.models import RunId, TaskId
from orchestrator.toolkit import (
    ApprovalCallback,
    ApprovalRequest,
    Tool,
    ToolContext,
    ToolFailed,
    ToolRetry,
)
from orchestrator.tools.sandbox import Sandbox
from orchestrator.tools.shell import ShellTool, run_acceptance_check
from orchestrator.tools.shell_policy import ShellPolicy


@pytest.fixture(
    params=[
        pytest.param("unisolated", id="unisolated"),
        pytest.param("bwrap", id="bwrap", marks=pytest.mark.sandbox),
    ]
)
def sandbox(request: pytest.FixtureRequest) -> Sandbox | None:
    if request.param == "unisolated":
        return None
    detected = Sandbox.detect()
    if not detected.is_available:
        pytest.skip(f"bubblewrap is unavailable here: {detected.status_message}")
    return detected


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    return path


def context(tmp_path: Path, approve: ApprovalCallback | None = None) -> ToolContext:
    return ToolContext(
        workdir=tmp_path / "workspace",
        run_dir=tmp_path / "run",
        run_id=RunId("run-1"),
        task_id=TaskId("t1"),
        call_id="call_1",
        approve=approve,
    )


def function_call(command: str, **limits: int | None) -> ToolCall:
    arguments = {"command": command, "timeout_ms": None, "max_output_length": None, **limits}
    return ToolCall(call_id="call_1", name="shell", arguments=json.dumps(arguments))


def native_call(*commands: str, **limits: int | None) -> ToolCall:
    action = {"commands": list(commands), **limits}
    return ToolCall(call_id="call_1", name="shell", arguments=json.dumps(action), kind="shell")


def test_shell_tool_satisfies_tool_protocol() -> None:
    tool = ShellTool(sandbox=None)

    assert isinstance(tool, Tool)
    assert tool.name == "shell"


def test_shell_tool_definition_is_native_when_backend_supports_it() -> None:
    definition = ShellTool(sandbox=None).definition(native=frozenset({"shell", "apply_patch"}))

    assert (definition.kind, definition.name, dict(definition.parameters)) == ("shell", "shell", {})


def test_shell_tool_definition_is_strict_function_otherwise() -> None:
    definition = ShellTool(sandbox=None).definition(native=frozenset())
    schema = definition.parameters

    assert (definition.kind, definition.name, definition.strict) == ("function", "shell", True)
    assert {name: spec["type"] for name, spec in schema["properties"].items()} == {
        "command": "string",
        "timeout_ms": ["integer", "null"],
        "max_output_length": ["integer", "null"],
    }
    assert schema["required"] == ["command", "timeout_ms", "max_output_length"]
    assert schema["additionalProperties"] is False


def test_shell_tool_definition_mentions_isolation() -> None:
    definition = ShellTool(sandbox=Sandbox(bwrap="/usr/bin/bwrap", status_message="on"))

    assert "no network" in definition.definition(native=frozenset()).description


async def test_shell_tool_function_form_runs_command(
    tmp_path: Path, workspace: Path, sandbox: Sandbox | None
) -> None:
    tool = ShellTool(sandbox=sandbox)

    output = await tool(function_call("echo out; echo err >&2; exit 4"), context(tmp_path))

    assert output.content == "out\n[stderr]\nerr\n[exit code 4]"
    assert not output.is_error
    assert output.native is None


async def test_shell_tool_native_form_answers_each_command(
    tmp_path: Path, workspace: Path, sandbox: Sandbox | None
) -> None:
    tool = ShellTool(sandbox=sandbox)
    call = native_call(
        "echo a", "echo e >&2; exit 2", "sleep 5", max_output_length=500, timeout_ms=300
    )

    output = await tool(call, context(tmp_path))

    assert output.native == {
        "max_output_length": 500,
        "output": [
            {"stdout": "a\n", "stderr": "", "outcome": {"type": "exit", "exit_code": 0}},
            {"stdout": "", "stderr": "e\n", "outcome": {"type": "exit", "exit_code": 2}},
            {"stdout": "", "stderr": "", "outcome": {"type": "timeout"}},
        ],
    }
    assert not output.is_error
    assert output.content.startswith("$ echo a\na\n[exit code 0]\n\n$ echo e >&2; exit 2\n")


async def test_shell_tool_native_form_echoes_missing_limit_as_null(
    tmp_path: Path, workspace: Path
) -> None:
    output = await ShellTool(sandbox=None)(native_call("true"), context(tmp_path))

    assert output.native is not None
    assert output.native["max_output_length"] is None


async def test_shell_tool_native_form_truncates_to_max_output_length(
    tmp_path: Path, workspace: Path
) -> None:
    output = await ShellTool(sandbox=None)(
        native_call("seq 1 10000", max_output_length=50), context(tmp_path)
    )

    assert output.native is not None
    stdout = output.native["output"][0]["stdout"]
    log = tmp_path / "run" / "shell" / "t1-call_1-0.log"
    assert stdout.startswith("1\n2\n")
    assert f"characters truncated; full output: {log}]" in stdout
    assert log.read_text().splitlines()[-1] == "10000"


async def test_shell_tool_function_form_refuses_denied_command(
    tmp_path: Path, workspace: Path
) -> None:
    tool = ShellTool(sandbox=None, policy=ShellPolicy(deny=("rm",)))

    output = await tool(function_call("touch ran && rm ran"), context(tmp_path))

    assert output.is_error
    assert output.content.startswith("Command refused: `rm ran` matches the deny rule `rm`")
    assert not (workspace / "ran").exists()


async def test_shell_tool_native_form_runs_nothing_when_one_command_is_refused(
    tmp_path: Path, workspace: Path
) -> None:
    tool = ShellTool(sandbox=None, policy=ShellPolicy(deny=("git push",)))

    output = await tool(
        native_call("touch ran", "git push", max_output_length=100), context(tmp_path)
    )

    refused = {"type": "exit", "exit_code": 126}
    not_run = "command refused: not run: command 2 was refused"
    reason = "command refused: `git push` matches the deny rule `git push`"
    assert output.is_error
    assert output.native == {
        "max_output_length": 100,
        "output": [
            {"stdout": "", "stderr": not_run, "outcome": refused},
            {"stdout": "", "stderr": reason, "outcome": refused},
        ],
    }
    assert not (workspace / "ran").exists()


async def test_shell_tool_asks_context_approver(tmp_path: Path, workspace: Path) -> None:
    asked: list[ApprovalRequest] = []

    async def approve(request: ApprovalRequest) -> bool:
        asked.append(request)
        return True

    tool = ShellTool(sandbox=None, policy=ShellPolicy(allow=("ls",)))

    output = await tool(function_call("echo approved"), context(tmp_path, approve))

    assert output.content == "approved\n[exit code 0]"
    assert [(r.summary, r.task_id) for r in asked] == [("echo approved", "t1")]


async def test_shell_tool_reports_refused_approval_as_error(
    tmp_path: Path, workspace: Path
) -> None:
    async def refuse(request: ApprovalRequest) -> bool:
        return False

    tool = ShellTool(sandbox=None, policy=ShellPolicy(allow=("ls",)))

    output = await tool(function_call("touch ran"), context(tmp_path, refuse))

    assert output.is_error
    assert "approval refused" in output.content
    assert not (workspace / "ran").exists()


@pytest.mark.parametrize(
    "arguments",
    ['{"command": ""}', '{"cmd": "ls"}', "not json", '{"command": "ls", "timeout_ms": "soon"}'],
    ids=["empty-command", "unknown-field", "not-json", "bad-timeout"],
)
async def test_shell_tool_asks_model_to_retry_bad_arguments(tmp_path: Path, arguments: str) -> None:
    call = ToolCall(call_id="call_1", name="shell", arguments=arguments)

    with pytest.raises(ToolRetry, match="invalid shell arguments"):
        await ShellTool(sandbox=None)(call, context(tmp_path))


async def test_shell_tool_native_form_needs_commands(tmp_path: Path) -> None:
    with pytest.raises(ToolRetry, match="commands"):
        await ShellTool(sandbox=None)(native_call(), context(tmp_path))


async def test_shell_tool_fails_when_workspace_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ToolFailed, match="could not be started"):
        await ShellTool(sandbox=None)(function_call("true"), context(tmp_path))


async def test_shell_tool_caps_requested_timeout(tmp_path: Path, workspace: Path) -> None:
    tool = ShellTool(sandbox=None, max_timeout_ms=200)

    output = await tool(function_call("sleep 5", timeout_ms=600_000), context(tmp_path))

    assert "[timed out after" in output.content


async def test_run_acceptance_check_reports_exit_code(
    tmp_path: Path, workspace: Path, sandbox: Sandbox | None
) -> None:
    (workspace / "done.txt").write_text("ok")

    passed = await run_acceptance_check(
        "test -f done.txt", workspace, 5.0, tmp_path, sandbox=sandbox
    )
    failed = await run_acceptance_check(
        "test -f nope.txt", workspace, 5.0, tmp_path, sandbox=sandbox
    )

    assert (passed.exit_code, failed.exit_code) == (0, 1)
    assert passed.sandboxed is (sandbox is not None)


async def test_run_acceptance_check_times_out(tmp_path: Path, workspace: Path) -> None:
    result = await run_acceptance_check("sleep 5", workspace, 0.2, tmp_path, sandbox=None)

    assert result.timed_out
