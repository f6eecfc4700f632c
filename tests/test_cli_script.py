"""`orchestrator run script.py`: a goal script gets the same front door as a goal — the flags
(through its environment), the one-line errors and exit statuses, and Ctrl-C printing the
partial result. The real CLI runs in a subprocess against a loopback OpenAI-protocol server.
"""

from __future__ import annotations

import json
import re
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .cli_harness import (
    UNREACHABLE,
    assert_one_error,
    backend_flags,
    cli_env,
    orchestrator,
    server_flags,
    sleeping,
    tree,
    wait_for,
    write_script,
)
from .engine_model import EngineModel
from .fault_server import FaultServer

RUN_GOAL = [
    "from pathlib import Path",
    "from orchestrator import Orchestrator",
    "",
    "async def main() -> int:",
    "    result = await Orchestrator(review='none').run('Count the words.')",
    "    print('cwd', Path.cwd())",
    "    print('status', result.status)",
    "    return 3",
]
SCRIPT_MODELS = "s-mini,s-base,s-top"
_CANCELLED = re.compile(r"^run (\S+): cancelled$", re.MULTILINE)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer(EngineModel(2, tool="not_registered"), role_of=EngineModel.role_of) as srv:
        yield srv


@pytest.mark.timeout(60)
def test_cli_script_gets_the_backend_flags_and_runs_in_the_workdir(
    tmp_path: Path, work: Path, server: FaultServer
) -> None:
    """--base-url/--models/... reach the script's own Orchestrator(); main()'s int is the status."""
    script = write_script(tmp_path / "goal.py", RUN_GOAL)
    flags = server_flags(server, SCRIPT_MODELS)
    cli = orchestrator("run", str(script), *flags, "--workdir", str(work), cwd=tmp_path)
    assert cli.code == 3, cli.stderr[-3000:]
    assert f"cwd {work.resolve()}" in cli.stdout
    assert "status completed" in cli.stdout
    assert {r.model for r in server.records} <= set(SCRIPT_MODELS.split(","))
    assert [r.role for r in server.records].count("planner") == 1
    assert (work / ".orchestrator" / "runs" / "runs.sqlite3").is_file()


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("body", "code", "what"),
    [
        pytest.param(["def main(:"], 2, "does not parse: invalid syntax (line 1)", id="syntax"),
        pytest.param(["import no_such_module_here"], 2, "failed while loading", id="import"),
        pytest.param(["def main() -> None: ..."], 2, "has no `async def main()`", id="no-main"),
        pytest.param(
            ["async def main() -> None:", "    raise ValueError('boom')"],
            1,
            "raised ValueError: boom",
            id="raises",
        ),
    ],
)
def test_cli_script_error_is_one_line(
    tmp_path: Path, body: list[str], code: int, what: str
) -> None:
    script = write_script(tmp_path / "goal.py", body)
    cli = orchestrator("run", str(script), cwd=tmp_path)
    line = assert_one_error(cli, code, what)
    if code == 1:
        assert line.endswith("run with --debug for the traceback")
    debug = orchestrator("run", str(script), "--debug", cwd=tmp_path)
    assert debug.code == code
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.rstrip().splitlines()[-1] == line


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("flags", "what"),
    [
        pytest.param(("--json",), "--json needs a goal", id="json"),
        pytest.param(("--review", "none"), "--review needs a goal", id="review"),
        pytest.param(("--models", "a,,c"), "empty model id", id="models"),
        pytest.param(("--workdir", "nowhere"), "no such workdir", id="workdir"),
    ],
)
def test_cli_script_refuses_what_it_cannot_apply_before_running_it(
    tmp_path: Path, flags: tuple[str, ...], what: str
) -> None:
    marker = tmp_path / "ran"
    script = write_script(
        tmp_path / "goal.py",
        ["from pathlib import Path", f"Path({str(marker)!r}).touch()", "async def main(): ..."],
    )
    cli = orchestrator("run", str(script), *backend_flags(UNREACHABLE), *flags, cwd=tmp_path)
    assert_one_error(cli, 2, what)
    assert not marker.exists()


@pytest.mark.timeout(30)
def test_cli_script_system_exit_is_its_status(tmp_path: Path) -> None:
    script = write_script(tmp_path / "goal.py", ["async def main():", "    raise SystemExit(4)"])
    cli = orchestrator("run", str(script), cwd=tmp_path)
    assert (cli.code, cli.stderr) == (4, "")


@pytest.mark.timeout(60)
def test_cli_script_ctrl_c_prints_the_partial_result(tmp_path: Path, work: Path) -> None:
    """SIGINT while the script's run has a task going: the run is cancelled, its partial result
    printed and saved, exit 130, no traceback, and the task's command is gone."""
    marker = f"30.{secrets.randbelow(10**9):09d}"
    arguments = {
        "command": f"trap '' TERM INT; sleep {marker}",
        "timeout_ms": None,
        "max_output_length": None,
    }
    script = write_script(tmp_path / "goal.py", RUN_GOAL)
    model = EngineModel(1, tool="shell", arguments=arguments)
    with (
        FaultServer(model, role_of=EngineModel.role_of) as srv,
        (tmp_path / "out").open("w+") as out,
        (tmp_path / "err").open("w+") as err,
    ):
        args = ("run", str(script), *server_flags(srv), "--workdir", str(work))
        cli = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=cli_env(),
            cwd=tmp_path,
        )
        try:
            started = wait_for(lambda: bool(sleeping(marker)) or cli.poll() is not None, 30)
            assert started and cli.poll() is None, Path(err.name).read_text()[-3000:]
            cli.send_signal(signal.SIGINT)
            code = cli.wait(timeout=20)
        finally:
            if cli.poll() is None:
                cli.kill()
                cli.wait()
        stdout, stderr = Path(out.name).read_text(), Path(err.name).read_text()
    assert code == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    assert "cancelling:" in stderr
    printed = _CANCELLED.search(stdout)
    assert printed is not None, stdout
    assert "status" not in stdout  # main() never got its result: the CLI printed it
    saved = work / ".orchestrator" / "runs" / printed.group(1) / "result.json"
    assert json.loads(saved.read_text())["status"] == "cancelled"
    assert not sleeping(marker)


@pytest.mark.timeout(30)
def test_cli_script_loading_creates_nothing_in_the_workdir(tmp_path: Path, work: Path) -> None:
    script = write_script(tmp_path / "goal.py", ["async def main() -> None:", "    print('hi')"])
    cli = orchestrator("run", str(script), "--workdir", str(work), cwd=tmp_path)
    assert (cli.code, cli.stdout, cli.stderr) == (0, "hi\n", "")
    assert tree(work) == []
