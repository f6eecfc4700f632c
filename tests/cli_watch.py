"""Watching `orchestrator run` from outside: the real CLI against a loopback OpenAI-protocol server
that answers slowly enough for progress to be seen mid-run (in a pipe, in tmux).

`watched_server(n)` serves a layered plan of `n` tasks (each with a plan estimate, so an ETA shows
from the plan line on); `cli_args` / `cli_env` give the command line and environment that run
the goal against it; `Pane` runs a script in a detached tmux session and captures its screen.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from .engine_model import TEST_API_KEY, EngineModel
from .fault_server import FaultServer

GOAL = "Count the words of every item."
MODELS = "gpt-5.4-nano,gpt-5.4-mini,gpt-5.4"
"""Priced models, so every cost is in dollars (the server answers any model id)."""


class EstimatedModel(EngineModel):
    """`EngineModel` whose planner gives every task an estimate of `est_s` seconds."""

    def __init__(self, n_tasks: int, *, est_s: float = 1.0) -> None:
        # The task's tool is not registered in the CLI, so the plan gives tasks none: each
        # executor call reports at once.
        super().__init__(n_tasks, shape="layered", width=3, tool="not_a_registered_tool")
        self.est_s = est_s

    def _task(self, index: int, tid: str, has_tool: bool) -> dict[str, Any]:
        return super()._task(index, tid, has_tool) | {"est_seconds": self.est_s}


@contextmanager
def watched_server(n_tasks: int, *, latency_s: float = 0.0) -> Generator[FaultServer]:
    """A server that plays every role of a run of `n_tasks` tasks, pausing `latency_s` a reply."""
    model = EstimatedModel(n_tasks)
    with FaultServer(model, role_of=EngineModel.role_of, latency_s=latency_s) as server:
        yield server


def task_ids(n_tasks: int) -> tuple[str, ...]:
    return EngineModel(n_tasks).task_ids


def cli_args(server: FaultServer, workdir: Path, *flags: str) -> list[str]:
    """`python -m orchestrator.cli run GOAL ...` against `server`."""
    return [
        *(sys.executable, "-m", "orchestrator.cli", "run", GOAL, *flags),
        *("--base-url", server.base_url, "--backend", "compatible", "--api-style", "chat"),
        *("--models", MODELS, "--workdir", str(workdir)),
    ]


def cli_env(run_root: Path) -> dict[str, str]:
    """This environment without OPENAI_*/ORCH_* settings, plus the test key and run root."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ORCH_"))}
    return env | {"OPENAI_API_KEY": TEST_API_KEY, "ORCH_RUN_ROOT": str(run_root)}


# -- a real terminal ----------------------------------------------------------------------------
def tmux_or_skip() -> str:
    """tmux's path; a skip where it is missing, a failure when CI is set (CI installs it)."""
    found = shutil.which("tmux")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("tmux is required in CI (.ci/run installs it)")
        pytest.skip("tmux is not installed")
    return found


class Pane:
    """A detached tmux session on its own server (its own socket), running one script."""

    def __init__(self, tmux: str, socket: str, env: dict[str, str]) -> None:
        self._base = [tmux, "-L", socket, "-f", os.devnull]
        self._env = env

    def start(self, script: Path) -> None:
        new = ["new-session", "-d", "-s", "run", "-x", "160", "-y", "50", f"bash {script}"]
        subprocess.run([*self._base, *new], env=self._env, check=True, timeout=10)

    def screen(self, *, history: bool = False) -> str:
        scroll = ["-S", "-"] if history else []
        cmd = [*self._base, "capture-pane", "-p", "-t", "run", *scroll]
        return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=10).stdout

    def cursor_visible(self) -> bool:
        cmd = [*self._base, "display-message", "-p", "-t", "run", "#{cursor_flag}"]
        flag = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=10)
        return flag.stdout.strip() == "1"

    def keys(self, *keys: str) -> None:
        subprocess.run([*self._base, "send-keys", "-t", "run", *keys], check=True, timeout=10)

    def wait(self, seen: Callable[[str], bool], timeout_s: float = 30.0) -> str:
        """The first screen `seen` accepts, polled every 50 ms."""
        deadline = time.monotonic() + timeout_s
        while True:
            screen = self.screen()
            if seen(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"not seen within {timeout_s}s; the screen:\n{screen}")
            time.sleep(0.05)

    def close(self) -> None:
        subprocess.run([*self._base, "kill-server"], capture_output=True, timeout=10, check=False)


def run_script(tmp_path: Path, args: list[str]) -> tuple[Path, Path]:
    """(script, status file): the script runs `args`, writes its exit status, keeps the pane."""
    status = tmp_path / "status"
    script = tmp_path / "run.sh"
    script.write_text(f"{shlex.join(args)}\necho $? > {status}\nsleep 300\n")
    return script, status


def exit_status(status: Path, timeout_s: float = 30.0) -> int:
    """The exit status `run_script`'s script wrote, once it has."""
    deadline = time.monotonic() + timeout_s
    while not status.is_file() or not status.read_text().strip():
        assert time.monotonic() < deadline, "the CLI did not exit"
        time.sleep(0.05)
    return int(status.read_text())


def table_rows(screen: str) -> dict[str, list[str]]:
    """The live table's rows on a screen, by task id (cells split on two or more spaces)."""
    rows: dict[str, list[str]] = {}
    for line in screen.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if re.fullmatch(r"t\d{4}", cells[0]):
            rows[cells[0]] = cells[1:]
    return rows
