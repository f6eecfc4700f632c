"""Driving the real `orchestrator` command line in a subprocess, as a user does, and checking its
errors: one `error: <what> — <what to do>` line on stderr, no traceback, the documented status."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .engine_model import TEST_API_KEY
from .fault_server import FaultServer

TIMEOUT_S = 40.0
MODELS = "m-mini,m-base,m-top"
UNREACHABLE = "http://127.0.0.1:9/v1"
"""A base URL nothing listens on: a command that got as far as a model call would hang there."""


@dataclass(frozen=True, slots=True)
class Cli:
    code: int
    stdout: str
    stderr: str

    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error: ")]


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Our environment without OPENAI_*/ORCH_* (a developer's own settings), plus a test key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ORCH_"))}
    return env | {"OPENAI_API_KEY": TEST_API_KEY, "ORCH_SHELL_SANDBOX": "off"} | dict(extra or {})


def backend_flags(base_url: str, models: str = MODELS) -> tuple[str, ...]:
    return (
        *("--base-url", base_url, "--backend", "compatible", "--api-style", "chat"),
        *("--models", models),
    )


def server_flags(server: FaultServer, models: str = MODELS) -> tuple[str, ...]:
    return backend_flags(server.base_url, models)


def orchestrator(
    *args: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    timeout_s: float = TIMEOUT_S,
) -> Cli:
    """Run `python -m orchestrator.cli ARGS` in `cwd` and wait for it."""
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        env=cli_env(env),
        cwd=cwd,
        timeout=timeout_s,
        check=False,
    )
    return Cli(done.returncode, done.stdout, done.stderr)


def assert_one_error(cli: Cli, code: int, *fragments: str, alone: bool = True) -> str:
    """The command exited `code` with one error line holding `fragments`; returns that line.

    With `alone`, that line is all of stderr (nothing ran that could log).
    """
    assert cli.code == code, (cli.code, cli.stderr[-3000:])
    assert "Traceback" not in cli.stderr, cli.stderr[-3000:]
    (line,) = cli.error_lines()
    if alone:
        assert cli.stderr.strip() == line, cli.stderr
    assert " — " in line, line
    for fragment in fragments:
        assert fragment in line, line
    return line


def tree(root: Path) -> list[str]:
    """Every path under `root`, relative, sorted (what a command left behind)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def write_script(path: Path, body: Sequence[str]) -> Path:
    path.write_text("\n".join(body) + "\n")
    return path


def sleeping(marker: str) -> list[int]:
    """Live `sleep` processes whose argv holds `marker` (what a cancelled task must not leave)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if state != "Z" and argv[0] == b"sleep" and marker.encode() in argv:
            found.append(int(entry.name))
    return found


def wait_for(predicate: Callable[[], bool], timeout_s: float) -> bool:
    """Poll `predicate()` (another process's state has no event to wait on) until true or timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()
