"""The shell runner, against both the bubblewrap sandbox and the unisolated fallback."""

from __future__ import annotations

import os
import tracemalloc
import uuid
from pathlib import Path

import anyio
import pytest

from orchestrator.tools.sandbox import Sandbox
from orchestrator.tools.shell_policy import ShellPolicy
from orchestrator.tools.shell_process import GRACE_S
from orchestrator.tools.shell_runner import OUTPUT_LIMIT_BYTES, ShellResult, arun_shell, run_shell

# "Promptly" leaves room for a loaded CI machine, far below the 30 s the commands ask for.
PROMPT_S = 3.0


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
    return path.resolve()


def token() -> str:
    """A unique argv[0] that marks the processes a test starts, so /proc can find survivors."""
    return f"orch-test-{uuid.uuid4().hex}"


def live_processes_named(name: str) -> list[int]:
    """PIDs of live (non-zombie) processes whose command line contains `name`."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if name.encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


async def run(
    command: str,
    cwd: Path,
    sandbox: Sandbox | None,
    *,
    timeout_ms: int = 5_000,
    max_output_length: int | None = None,
    full_output_dir: Path | None = None,
) -> ShellResult:
    return await arun_shell(
        command,
        cwd,
        timeout_ms=timeout_ms,
        max_output_length=max_output_length,
        sandbox=sandbox,
        full_output_dir=full_output_dir,
    )


async def test_runner_reports_exit_code(workspace: Path, sandbox: Sandbox | None) -> None:
    result = await run("exit 3", workspace, sandbox)

    assert result.exit_code == 3
    assert not result.timed_out
    assert result.sandboxed is (sandbox is not None)


async def test_runner_reports_signal_as_128_plus_number(
    workspace: Path, sandbox: Sandbox | None
) -> None:
    result = await run("kill -KILL $$", workspace, sandbox)

    assert result.exit_code == 128 + 9


async def test_runner_separates_stdout_and_stderr(workspace: Path, sandbox: Sandbox | None) -> None:
    result = await run("echo out; echo err >&2", workspace, sandbox)

    assert (result.stdout, result.stderr) == ("out\n", "err\n")


async def test_runner_runs_in_cwd(workspace: Path, sandbox: Sandbox | None) -> None:
    result = await run("pwd", workspace, sandbox)

    assert result.stdout == f"{workspace}\n"


async def test_runner_gives_stdin_eof_at_once(workspace: Path, sandbox: Sandbox | None) -> None:
    result = await run("cat; echo done", workspace, sandbox, timeout_ms=5_000)

    assert not result.timed_out
    assert result.stdout == "done\n"


async def test_runner_replaces_undecodable_bytes(workspace: Path, sandbox: Sandbox | None) -> None:
    result = await run(r"printf 'a\377b'", workspace, sandbox)

    assert result.stdout == "a\ufffdb"


async def test_runner_times_out(workspace: Path, sandbox: Sandbox | None) -> None:
    result = await run("sleep 30", workspace, sandbox, timeout_ms=200)

    assert result.timed_out
    assert result.exit_code is None


async def test_runner_kills_command_ignoring_sigterm_within_grace(
    workspace: Path, sandbox: Sandbox | None
) -> None:
    name = token()
    started = anyio.current_time()

    result = await run(
        f"trap '' TERM; (exec -a {name} sleep 30)", workspace, sandbox, timeout_ms=200
    )

    assert result.timed_out
    assert anyio.current_time() - started < 0.2 + GRACE_S + PROMPT_S
    assert live_processes_named(name) == []


async def test_runner_sends_sigterm_before_sigkill(workspace: Path) -> None:
    """Unisolated, a command may clean up on SIGTERM. In bwrap the same SIGTERM also ends bwrap,
    whose death SIGKILLs the PID namespace, so a handler there may not get to run."""
    command = "trap 'echo cleaned up; exit 0' TERM; sleep 30 & wait"

    result = await run(command, workspace, None, timeout_ms=200)

    assert result.timed_out
    assert result.stdout == "cleaned up\n"


async def test_runner_kills_group_of_unisolated_command(workspace: Path) -> None:
    """The shell's PID is its process group id; no live member is left once we return."""
    result = await run("echo $$; trap '' TERM; sleep 30", workspace, None, timeout_ms=200)
    pgid = int(result.stdout)

    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)


async def test_runner_returns_when_grandchild_holds_stdout(
    workspace: Path, sandbox: Sandbox | None
) -> None:
    name = token()
    started = anyio.current_time()

    result = await run(f"(exec -a {name} sleep 30 &) ; echo hi", workspace, sandbox)

    assert result.stdout == "hi\n"
    assert anyio.current_time() - started < PROMPT_S
    assert live_processes_named(name) == []


async def test_runner_kills_nohup_background_job(workspace: Path, sandbox: Sandbox | None) -> None:
    name = token()

    await run(f"nohup bash -c 'exec -a {name} sleep 100' >/dev/null 2>&1 &", workspace, sandbox)

    assert live_processes_named(name) == []


async def test_runner_kills_setsid_daemon(workspace: Path, sandbox: Sandbox | None) -> None:
    """`setsid` leaves the process group; unisolated, the inherited run marker still finds it.

    A daemon that both leaves the session *and* drops its environment (`setsid env -i ...`) is
    stopped by the reaper every command runs under (`tools/shell_reaper.py`, a child subreaper),
    and in the sandbox by its PID namespace (see test_shell_sandbox.py).
    """
    name = token()

    await run(f"setsid bash -c 'exec -a {name} sleep 100' >/dev/null 2>&1 &", workspace, sandbox)

    assert live_processes_named(name) == []


async def test_runner_cancellation_kills_group_and_propagates(
    workspace: Path, sandbox: Sandbox | None
) -> None:
    name = token()
    fifo = workspace / "ready"
    os.mkfifo(fifo)
    after_run: list[ShellResult] = []

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:

            async def run_then_record() -> None:
                command = f"echo ready > ready; exec -a {name} sleep 30"
                after_run.append(await run(command, workspace, sandbox, timeout_ms=30_000))

            tg.start_soon(run_then_record)
            await anyio.to_thread.run_sync(fifo.read_text)  # returns once the command is running
            scope.cancel()

    assert scope.cancelled_caught
    assert after_run == []
    assert live_processes_named(name) == []


async def test_runner_caps_output_head_and_tail(
    workspace: Path, sandbox: Sandbox | None, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"

    result = await run(
        "seq 1 100000", workspace, sandbox, max_output_length=100, full_output_dir=logs
    )

    assert result.truncated
    assert result.stdout.startswith("1\n2\n3\n")
    assert result.stdout.endswith("99999\n100000\n")
    assert f"characters truncated; full output: {result.full_output_path}]" in result.stdout
    assert len(result.stdout) < 100 + 200


async def test_runner_streams_full_output_to_file(
    workspace: Path, sandbox: Sandbox | None, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"

    result = await run(
        "seq 1 100000", workspace, sandbox, max_output_length=100, full_output_dir=logs
    )

    assert result.full_output_path is not None
    assert result.full_output_path.parent == logs
    expected = "".join(f"{n}\n" for n in range(1, 100001))
    assert result.full_output_path.read_text() == expected


async def test_runner_drops_full_output_file_when_nothing_was_cut(
    workspace: Path, sandbox: Sandbox | None, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"

    result = await run("echo short", workspace, sandbox, full_output_dir=logs)

    assert result.full_output_path is None
    assert list(logs.iterdir()) == []


async def test_runner_shares_output_budget_between_streams(
    workspace: Path, sandbox: Sandbox | None
) -> None:
    """A short stderr is kept whole while a long stdout takes the rest of the budget."""
    result = await run("seq 1 10000; echo oops >&2", workspace, sandbox, max_output_length=200)

    assert result.stderr == "oops\n"
    assert result.truncated


async def test_runner_kills_command_flooding_output_with_bounded_memory(
    workspace: Path, sandbox: Sandbox | None, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    tracemalloc.start()
    try:
        result = await run("yes | head -c 3G", workspace, sandbox, full_output_dir=logs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert result.output_limit_hit
    assert result.truncated
    assert len(result.stdout) < 10_000 + 200
    assert peak < 16 * 1024 * 1024
    assert result.full_output_path is not None
    assert OUTPUT_LIMIT_BYTES <= result.full_output_path.stat().st_size < OUTPUT_LIMIT_BYTES + 200


async def test_runner_hides_openai_key(
    workspace: Path, sandbox: Sandbox | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-for-commands")
    monkeypatch.setenv("SOME_SERVICE_TOKEN", "tok-test-not-for-commands")

    result = await run('echo "[$OPENAI_API_KEY]"; env', workspace, sandbox)

    assert result.stdout.startswith("[]\n")
    assert "not-for-commands" not in result.stdout


async def test_runner_refuses_command_denied_by_policy(
    workspace: Path, sandbox: Sandbox | None
) -> None:
    result = await arun_shell(
        "touch ran; git push",
        workspace,
        timeout_ms=None,
        max_output_length=None,
        policy=ShellPolicy(deny=("git push",)),
        sandbox=sandbox,
    )

    assert result.denied is not None
    assert "git push" in result.denied
    assert result.exit_code is None
    assert not (workspace / "ran").exists()


def test_run_shell_runs_from_sync_code(workspace: Path) -> None:
    result = run_shell("echo sync", workspace, timeout_ms=5_000)

    assert (result.stdout, result.exit_code) == ("sync\n", 0)


def test_run_shell_isolates_by_default_where_bubblewrap_works(workspace: Path) -> None:
    """No sandbox argument means the same isolation the shell tool gets, not none."""
    result = run_shell("true", workspace, timeout_ms=5_000)

    assert result.sandboxed is Sandbox.detect().is_available


def test_run_shell_runs_unisolated_only_when_asked(workspace: Path) -> None:
    result = run_shell("true", workspace, timeout_ms=5_000, sandbox=None)

    assert result.exit_code == 0
    assert not result.sandboxed
