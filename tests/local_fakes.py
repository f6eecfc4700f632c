"""Helpers for the embedded-model tests: fake servers as real subprocesses, and process checks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio

from orchestrator.llm import ModelRequest, UserMessage
from orchestrator.local_model import LOCAL_MODEL_ID, CommandBuilder, ServerLaunch

FAKE_SERVER = Path(__file__).with_name("fake_llama_server.py")


def fake_command(state_dir: Path, mode: str) -> CommandBuilder:
    """A command builder that starts `fake_llama_server.py` in `mode` on the launch's port."""

    def build(launch: ServerLaunch) -> list[str]:
        return [sys.executable, str(FAKE_SERVER), str(launch.port), mode, str(state_dir)]

    return build


def hello() -> ModelRequest:
    return ModelRequest(role="worker", model=LOCAL_MODEL_ID, messages=(UserMessage(content="hi"),))


def is_running(pid: int) -> bool:
    """Whether a process exists and is not a zombie (an unreaped zombie holds no resources)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def wait_for_exit(pid: int, timeout_s: float = 5.0) -> None:
    """Wait (without polling) until a process, not necessarily our child, has exited."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return  # already exited and reaped
    try:
        with anyio.fail_after(timeout_s):
            await anyio.wait_readable(pidfd)
    finally:
        os.close(pidfd)
