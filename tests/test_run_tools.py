"""The engine with the real built-in tools: apply_patch and shell on real files and processes."""

from __future__ import annotations

import json
from pathlib import Path

import anyio

from orchestrator.llm import ModelReply, ModelRequest
from orchestrator.models import RunResult, Skipped, Succeeded, TaskId
from orchestrator.testing import RecordingSink, ScriptedModel, tool_call
from orchestrator.tools.apply_patch import ApplyPatchTool
from orchestrator.tools.shell import ShellTool

from .helpers import accept_all, answer, engine, leaf, plan, task

PATCH = "*** Begin Patch\n*** Add File: hello.py\n+print('hello')\n*** End Patch\n"


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting to be reaped by init has stopped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def _check_with_shell():  # the app's real acceptance-check runner
    from orchestrator.app import shell_check

    return shell_check


async def test_run_tools_patch_then_shell_with_a_passing_check(
    scripted: ScriptedModel, sink: RecordingSink, tmp_path: Path
) -> None:
    work = tmp_path / "ws"
    work.mkdir()

    def worker(request: ModelRequest) -> ModelReply:
        results = [m for m in request.messages if m.role == "tool"]
        if request.task_id == "write":
            if not results:
                return tool_call("apply_patch", {"patch": PATCH}, call_id="p1")
            return ModelReply(text=leaf(results[0].content).model_dump_json())  # type: ignore[union-attr]
        if not results:
            return tool_call(
                "shell",
                {"command": "python3 hello.py", "timeout_ms": 10_000, "max_output_length": None},
                call_id="s1",
            )
        return ModelReply(text=leaf("ran", output=results[0].content).model_dump_json())  # type: ignore[union-attr]

    scripted.script(
        "planner",
        plan(
            task("write", tools=["apply_patch"], check="test -f hello.py"),
            task("run", "write", tools=["shell"]),
        ),
    )
    scripted.respond("worker", worker).respond("reviewer", accept_all).respond(
        "synthesizer", answer
    )
    eng = engine(
        scripted,
        tmp_path,
        tools=[ApplyPatchTool(), ShellTool()],
        sinks=[sink],
        check_runner=_check_with_shell(),
    )
    result = await eng.run("write and run hello.py", workdir=work)
    assert result.status == "completed"
    assert (work / "hello.py").read_text() == "print('hello')\n"
    ran = result.results[TaskId("run")]
    assert isinstance(ran, Succeeded) and "hello" in ran.outputs["output"]


async def test_run_tools_cancel_kills_running_shell_processes(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    """Cancelling a run mid-command leaves no process behind and still saves a partial result."""
    work = tmp_path / "ws"
    work.mkdir()
    pid_file = tmp_path / "child.pid"  # outside the workspace: the task edits its own copy
    command = f"sleep 60 & echo $! > {pid_file}; wait"
    scripted.script("planner", plan(task("long", tools=["shell"])))
    scripted.script(
        "worker",
        tool_call("shell", {"command": command, "timeout_ms": 120_000, "max_output_length": None}),
        task="long",
    )
    scripted.respond("reviewer", accept_all).respond("synthesizer", answer)
    eng = engine(scripted, tmp_path, tools=[ShellTool(sandbox=None)])
    result: RunResult | None = None
    async with anyio.create_task_group() as tg:

        async def cancel_when_started() -> None:
            while not pid_file.exists() or not pid_file.read_text().strip():  # noqa: ASYNC110
                await anyio.sleep(0.02)  # the child process writes it: no event to wait on
            eng.cancel()

        tg.start_soon(cancel_when_started)
        with anyio.fail_after(10):
            result = await eng.run("g", workdir=work)
    assert result is not None
    assert result.status == "cancelled"
    assert isinstance(result.results[TaskId("long")], Skipped)
    assert not _running(int(pid_file.read_text()))
    saved = json.loads(Path(result.run_dir or "", "result.json").read_text())
    assert saved["status"] == "cancelled"
