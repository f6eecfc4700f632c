"""Stopping the real CLI with signals: the partial result is printed and saved, however many come.

The CLI runs in a subprocess against a loopback model server whose one task runs the shell tool
(unsandboxed) on a `sleep` that ignores SIGTERM, so cancelling it takes the runner's whole grace
period: the second signal, 0.1 s after the first, lands while the run is still cleaning up.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .cli_harness import sleeping, wait_for
from .engine_model import TEST_API_KEY, EngineModel
from .fault_server import FaultServer

_START_TIMEOUT_S = 20.0
_EXIT_TIMEOUT_S = 15.0
_RESULT_LINE = re.compile(r"^run (\S+): cancelled$", re.MULTILINE)


def _cli_env(run_root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ORCH_"))}
    # Unsandboxed, the command's `trap '' TERM` holds the runner for its whole SIGTERM grace;
    # in bubblewrap, SIGTERM to bwrap ends the namespace at once and the cleanup is quick.
    sandbox_off = {"ORCH_SHELL_SANDBOX": "off"}
    return env | sandbox_off | {"OPENAI_API_KEY": TEST_API_KEY, "ORCH_RUN_ROOT": str(run_root)}


@pytest.mark.timeout(40)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_cli_second_signal_during_cleanup_keeps_the_printed_result(
    signum: signal.Signals, tmp_path: Path
) -> None:
    """Two signals 0.1 s apart while a task runs: exit 128+N within seconds, the cancelled
    partial result on stdout and in result.json, a notice for the second signal, no traceback,
    and the task's command is gone."""
    marker = f"30.{secrets.randbelow(10**9):09d}"
    command = f"trap '' TERM INT; sleep {marker}"
    arguments = {"command": command, "timeout_ms": None, "max_output_length": None}
    model = EngineModel(1, tool="shell", arguments=arguments)
    workdir, run_root = tmp_path / "work", tmp_path / "runs"
    workdir.mkdir()
    with (
        FaultServer(model, role_of=EngineModel.role_of) as srv,
        (tmp_path / "stdout").open("w+") as out,
        (tmp_path / "stderr").open("w+") as err,
    ):
        cli = subprocess.Popen(
            [
                *(sys.executable, "-m", "orchestrator.cli", "run", "Sleep on it."),
                *("--base-url", srv.base_url, "--backend", "compatible", "--api-style", "chat"),
                *("--models", "m1,m2,m3", "--review", "none", "--workdir", str(workdir)),
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=_cli_env(run_root),
            cwd=tmp_path,
        )
        try:
            running = wait_for(
                lambda: bool(sleeping(marker)) or cli.poll() is not None, _START_TIMEOUT_S
            )
            assert running and cli.poll() is None, Path(err.name).read_text()[-3000:]
            cli.send_signal(signum)
            time.sleep(0.1)  # the timing, not a synchronisation
            cli.send_signal(signum)
            code = cli.wait(timeout=_EXIT_TIMEOUT_S)
        finally:
            if cli.poll() is None:
                cli.kill()
                cli.wait()
        stdout, stderr = Path(out.name).read_text(), Path(err.name).read_text()
    assert code == 128 + signum, stderr[-3000:]
    assert "Traceback" not in stderr
    assert "cancelling:" in stderr and "already stopping" in stderr
    printed = _RESULT_LINE.search(stdout)
    assert printed is not None, stdout
    saved = json.loads((run_root / printed.group(1) / "result.json").read_text())
    assert saved["status"] == "cancelled"
    assert not sleeping(marker)
