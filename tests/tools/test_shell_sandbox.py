"""What the bubblewrap sandbox stops that the unisolated runner cannot, and its fallback."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from orchestrator.tools.sandbox import Sandbox, without_capabilities
from orchestrator.tools.shell_policy import ShellPolicy
from orchestrator.tools.shell_runner import ShellResult, arun_shell


@pytest.fixture
def sandbox() -> Sandbox:
    detected = Sandbox.detect()
    if not detected.is_available:
        pytest.skip(f"bubblewrap is unavailable here: {detected.status_message}")
    return detected


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    return path


@pytest.fixture
def outside_tmp() -> Iterator[Path]:
    """A host directory outside the private /tmp, so only the read-only mount can stop writes."""
    base = Path("/var/tmp")
    if not base.is_dir():
        pytest.skip("needs /var/tmp for a directory outside the private /tmp")
    path = Path(tempfile.mkdtemp(dir=base, prefix="orch-outside-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port on the host's loopback that accepts connections."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


@pytest.fixture
def secret_holder() -> Iterator[tuple[int, str]]:
    """A host process whose own environment holds an OpenAI key, as ours would at start-up."""
    secret = f"sk-test-{uuid.uuid4().hex}"
    process = subprocess.Popen(
        ["sleep", "30"], env={"PATH": "/usr/bin:/bin", "OPENAI_API_KEY": secret}
    )
    yield process.pid, secret
    process.kill()
    process.wait()


def live_processes_named(name: str) -> list[int]:
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
    command: str, cwd: Path, sandbox: Sandbox | None, *, policy: ShellPolicy | None = None
) -> ShellResult:
    return await arun_shell(
        command, cwd, timeout_ms=5_000, max_output_length=None, policy=policy, sandbox=sandbox
    )


async def test_unisolated_runner_reaches_host_loopback(workspace: Path, listener: int) -> None:
    """Control for the next test: the probe does connect when nothing isolates it."""
    result = await run(f"echo > /dev/tcp/127.0.0.1/{listener}", workspace, None)

    assert result.exit_code == 0


@pytest.mark.sandbox
async def test_sandbox_has_no_network(workspace: Path, sandbox: Sandbox, listener: int) -> None:
    result = await run(f"echo > /dev/tcp/127.0.0.1/{listener}", workspace, sandbox)

    assert result.exit_code != 0
    assert "Connection refused" in result.stderr


@pytest.mark.sandbox
async def test_sandbox_refuses_writes_outside_workspace(
    workspace: Path, sandbox: Sandbox, outside_tmp: Path
) -> None:
    result = await run(f"touch {outside_tmp}/escaped", workspace, sandbox)

    assert result.exit_code != 0
    assert "Read-only file system" in result.stderr
    assert not (outside_tmp / "escaped").exists()


@pytest.mark.sandbox
async def test_sandbox_allows_writes_in_workspace(workspace: Path, sandbox: Sandbox) -> None:
    result = await run("echo data > made.txt", workspace, sandbox)

    assert result.exit_code == 0
    assert (workspace / "made.txt").read_text() == "data\n"


@pytest.mark.sandbox
async def test_sandbox_mounts_workspace_read_only_in_read_only_mode(
    workspace: Path, sandbox: Sandbox
) -> None:
    """A write the policy cannot see (inside python) is still stopped by the mount."""
    command = "python3 -c \"open('made.txt', 'w')\""

    result = await run(command, workspace, sandbox, policy=ShellPolicy(read_only=True))

    assert result.exit_code != 0
    assert not (workspace / "made.txt").exists()


@pytest.mark.sandbox
async def test_sandbox_has_private_tmp(workspace: Path, sandbox: Sandbox, tmp_path: Path) -> None:
    host_file = tmp_path / "host-only"
    host_file.write_text("x")
    name = f"orch-private-{uuid.uuid4().hex}"

    result = await run(f"test ! -e {host_file} && touch /tmp/{name}", workspace, sandbox)

    assert result.exit_code == 0
    assert not (Path("/tmp") / name).exists()


@pytest.mark.sandbox
async def test_sandbox_caps_private_tmp(workspace: Path, sandbox: Sandbox) -> None:
    """The private /tmp lives in RAM, so it has a size cap (bwrap >= 0.8)."""
    if sandbox.tmp_size is None:
        pytest.skip("this bwrap cannot cap a tmpfs (--size needs bwrap 0.8)")
    small = dataclasses.replace(sandbox, tmp_size=1024 * 1024)

    result = await run("head -c 4M /dev/zero > /tmp/big", workspace, small)

    assert result.exit_code != 0
    assert "No space left on device" in result.stderr


@pytest.mark.sandbox
async def test_sandbox_hides_credential_files_in_home(
    workspace: Path, outside_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (outside_tmp / ".ssh").mkdir()
    (outside_tmp / ".ssh" / "id_ed25519").write_text("PRIVATE KEY")
    (outside_tmp / ".netrc").write_text("machine x password hunter2")
    monkeypatch.setenv("HOME", str(outside_tmp))
    sandbox = Sandbox.detect()
    if not sandbox.is_available:
        pytest.skip(f"bubblewrap is unavailable here: {sandbox.status_message}")

    result = await run('cat "$HOME/.netrc" "$HOME/.ssh/id_ed25519"', workspace, sandbox)

    assert "hunter2" not in result.stdout
    assert "PRIVATE KEY" not in result.stdout


@pytest.mark.sandbox
async def test_sandbox_hides_host_process_environments(
    workspace: Path, sandbox: Sandbox, secret_holder: tuple[int, str]
) -> None:
    pid, secret = secret_holder
    command = f"cat /proc/{pid}/environ /proc/$PPID/environ /proc/1/environ; cat /proc/*/environ"

    result = await run(command, workspace, sandbox)

    assert secret not in result.stdout


@pytest.mark.skipif(os.geteuid() == 0, reason="root's commands run without capabilities")
async def test_unisolated_runner_exposes_host_process_environments(
    workspace: Path, secret_holder: tuple[int, str]
) -> None:
    """Known limit, kept as a test so the contrast with the sandbox stays true: same-user processes'
    environments are readable unisolated. Our own key is scrubbed from the child, and our own
    /proc entries are hidden by `protect_process_secrets`, but other processes' are not."""
    pid, secret = secret_holder

    result = await run(f"cat /proc/{pid}/environ", workspace, None)

    assert secret in result.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="only root's commands have capabilities to drop")
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs util-linux setpriv")
async def test_unisolated_root_command_cannot_read_privileged_environments(
    workspace: Path, secret_holder: tuple[int, str]
) -> None:
    """Run by root, an unisolated command has no capabilities (as in bwrap), so it cannot read the
    environment of a process that holds some, as root processes like us do."""
    pid, secret = secret_holder

    result = await run(f"cat /proc/{pid}/environ; grep Cap /proc/self/status", workspace, None)

    assert secret not in result.stdout
    assert "Permission denied" in result.stderr
    assert "CapEff:\t0000000000000000" in result.stdout


@pytest.mark.sandbox
async def test_sandbox_kills_daemon_that_drops_session_and_environment(
    workspace: Path, sandbox: Sandbox
) -> None:
    """`setsid env -i` escapes the process group and the run marker; the PID namespace ends it."""
    name = f"orch-test-{uuid.uuid4().hex}"
    command = f"setsid env -i bash -c 'exec -a {name} sleep 100' >/dev/null 2>&1 &"

    await run(command, workspace, sandbox)

    assert live_processes_named(name) == []


@pytest.mark.sandbox
async def test_sandbox_cannot_regain_privileges(workspace: Path, sandbox: Sandbox) -> None:
    """Even as root, capabilities are dropped, so the read-only root cannot be remounted."""
    result = await run("mount -o remount,rw / && echo remounted", workspace, sandbox)

    assert "remounted" not in result.stdout


def test_sandbox_detect_reports_missing_bwrap() -> None:
    reasons: list[str] = []

    detected = Sandbox.detect(
        bwrap=f"/nonexistent/{uuid.uuid4().hex}", on_unavailable=reasons.append
    )

    assert not detected.is_available
    assert reasons == [detected.status_message]
    assert "WITHOUT isolation" in detected.status_message


def test_sandbox_detect_reports_bwrap_that_fails(tmp_path: Path) -> None:
    """Containers often forbid user namespaces: bwrap exists but cannot start anything."""
    broken = tmp_path / "bwrap"
    broken.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n"
    )
    broken.chmod(0o755)

    detected = Sandbox.detect(bwrap=str(broken))

    assert not detected.is_available
    assert "No permissions to creating new namespace" in detected.status_message


def test_sandbox_detect_logs_unavailability_once() -> None:
    missing = f"/nonexistent/{uuid.uuid4().hex}"

    with capture_logs() as logs:
        Sandbox.detect(bwrap=missing)
        Sandbox.detect(bwrap=missing)

    assert [entry["event"] for entry in logs] == ["sandbox_unavailable"]
    assert logs[0]["bwrap"] == missing


def test_unavailable_sandbox_leaves_argv_unchanged(tmp_path: Path) -> None:
    assert Sandbox.disabled().wrap(["echo", "hi"], tmp_path) == ["echo", "hi"]


async def test_runner_falls_back_when_sandbox_unavailable(workspace: Path) -> None:
    result = await run("echo ran", workspace, Sandbox.disabled())

    assert (result.stdout, result.sandboxed) == ("ran\n", False)


@pytest.mark.skipif(os.geteuid() == 0, reason="root's commands do get the capability drop")
def test_without_capabilities_leaves_non_root_argv_unchanged() -> None:
    assert without_capabilities(["echo", "hi"]) == ["echo", "hi"]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root's commands have capabilities to drop")
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs util-linux setpriv")
def test_without_capabilities_prefixes_root_argv_with_setpriv() -> None:
    argv = without_capabilities(["echo", "hi"])

    assert Path(argv[0]).name == "setpriv"
    assert "--bounding-set=-all" in argv
    assert argv[-3:] == ["--", "echo", "hi"]


async def test_sandbox_shows_this_python_when_the_private_tmp_would_hide_it(
    workspace: Path, sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A venv in a temporary checkout (as CI clones) stays runnable inside, read-only; the rest
    of the host's /tmp stays hidden."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "marker").write_text("here\n")
    (tmp_path / "beside").write_text("hidden\n")
    monkeypatch.setattr("sys.prefix", str(venv))

    result = await run(
        f"cat {venv}/bin/marker && ! touch {venv}/bin/new && test ! -e {tmp_path}/beside",
        workspace,
        sandbox,
    )

    assert result.exit_code == 0, result.stderr
    assert result.stdout == "here\n"
    assert not (venv / "bin" / "new").exists()


def test_sandbox_leaves_a_python_inside_the_workspace_to_the_workspace_bind(
    workspace: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.prefix", str(workspace / ".venv"))
    (workspace / ".venv").mkdir()
    argv = sandbox.wrap(["true"], workspace)
    assert str((workspace / ".venv").resolve()) not in argv
