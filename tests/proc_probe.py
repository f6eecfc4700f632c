"""A stand-in orchestrator process for the /proc probes in test_secrets.py; run as a subprocess.

    python -m tests.proc_probe {protect|exposed} {plain|tool|run_shell} WORKSPACE COMMAND

It is started with `OPENAI_API_KEY` in its initial environment, optionally protects it, then runs
COMMAND (with `{pid}` replaced by its own pid) through a plain `subprocess.run` that keeps every
capability (`plain`), the real shell tool with the sandbox off (`tool`), or `run_shell` with its
default sandbox (`run_shell`), and prints what the command printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio

from orchestrator.llm import ToolCall
from orchestrator.models import RunId, TaskId
from orchestrator.secrets import protect_process_secrets
from orchestrator.settings import Settings
from orchestrator.toolkit import ToolContext
from orchestrator.tools.shell import ShellTool
from orchestrator.tools.shell_runner import run_shell


def main(argv: Sequence[str]) -> int:
    mode, runner, workspace, template = argv
    if mode == "protect":
        protect_process_secrets(["OPENAI_API_KEY"])
    # What the rest of the app reads must survive the protection.
    print(f"settings key intact: {Settings.from_env().api_key is not None}")
    command = template.replace("{pid}", str(os.getpid()))
    if runner == "plain":
        done = subprocess.run(
            ["bash", "-c", command], capture_output=True, text=True, check=False, timeout=30
        )
        print(done.stdout, done.stderr)
    elif runner == "tool":
        print(anyio.run(_through_tool, command, Path(workspace)))
    else:
        result = run_shell(command, Path(workspace), timeout_ms=20_000, max_output_length=100_000)
        print(result.stdout, result.stderr, f"sandboxed={result.sandboxed}")
    return 0


async def _through_tool(command: str, workspace: Path) -> str:
    tool = ShellTool(sandbox=None)
    arguments = {"command": command, "timeout_ms": 20_000, "max_output_length": 100_000}
    call = ToolCall(call_id="probe", name="shell", arguments=json.dumps(arguments))
    ctx = ToolContext(
        workdir=workspace,
        run_dir=workspace.parent / "run",
        run_id=RunId("probe"),
        task_id=TaskId("probe"),
        call_id="probe",
    )
    return (await tool(call, ctx)).content


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
