"""The embedded model: finding it, its server's lifecycle and the supervising client.

The servers here are fakes (`fake_llama_server.py`) run as real subprocesses, so process groups,
ports, logs and restarts are exercised for real; no model is needed.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from orchestrator import local_model
from orchestrator.errors import LocalModelError, ModelAPIError
from orchestrator.llm import ReplyDone, StreamingModelClient, TextDelta
from orchestrator.local_model import (
    INSTALL_HINT,
    LLAMA_CPP_CAPABILITIES,
    LocalModelClient,
    LocalModelServer,
    ServerLaunch,
    find_embedded_model,
    llama_cpp_command,
)

from .local_fakes import fake_command, hello, is_running, wait_for_exit


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir()
    return path


@pytest.fixture
def fake_model(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF")
    return path


def make_server(
    tmp_path: Path,
    state_dir: Path,
    mode: str,
    *,
    port: int | None = None,
    ready_timeout_s: float = 8.0,
) -> LocalModelServer:
    return LocalModelServer(
        tmp_path / "model.gguf",
        threads=1,
        port=port,
        log_dir=tmp_path / "logs",
        ready_timeout_s=ready_timeout_s,
        command=fake_command(state_dir, mode),
    )


@pytest.fixture
def listening_socket() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock
    sock.close()


# --- finding the model ---------------------------------------------------------------------


def test_find_embedded_model_missing_package_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_model, "_MODEL_PACKAGE", "orch_test_no_such_package")
    monkeypatch.setattr(local_model, "_MODEL_DISTRIBUTION", "orch-test-no-such-dist")
    with pytest.raises(LocalModelError, match="not installed") as info:
        find_embedded_model()
    assert INSTALL_HINT in str(info.value)
    assert INSTALL_HINT == "pip install -e '.[local]'"


def test_find_embedded_model_locates_gguf_without_importing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The package is found on disk; its `__init__` (which needs `llm`) never runs."""
    package = tmp_path / "orch_test_fake_smollm"
    package.mkdir()
    (package / "__init__.py").write_text("raise ImportError('needs the llm package')\n")
    (package / "Tiny.Q4_1.gguf").write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path))  # pyright: ignore[reportUnknownMemberType]
    monkeypatch.setattr(local_model, "_MODEL_PACKAGE", "orch_test_fake_smollm")
    monkeypatch.setattr(local_model, "_MODEL_DISTRIBUTION", "orch-test-no-such-dist")
    assert find_embedded_model() == package / "Tiny.Q4_1.gguf"
    assert "orch_test_fake_smollm" not in sys.modules


def test_find_embedded_model_override_wins(fake_model: Path) -> None:
    assert find_embedded_model(fake_model) == fake_model


def test_find_embedded_model_missing_override_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(LocalModelError, match="ORCH_LOCAL_MODEL_PATH"):
        find_embedded_model(tmp_path / "absent.gguf")


def test_llama_cpp_command_sets_the_flags_the_server_needs(fake_model: Path) -> None:
    launch = ServerLaunch(
        model_path=fake_model, host="127.0.0.1", port=8123, threads=2, n_ctx=4096, model_alias="m"
    )
    argv = llama_cpp_command(launch)
    assert argv[:2] == [sys.executable, "-c"]
    assert 'run_module("llama_cpp.server"' in argv[2]
    assert argv[3] == str(os.getpid())
    flags = dict(zip(argv[4::2], argv[5::2], strict=True))
    assert flags["--n_threads"] == "2"
    assert flags["--interrupt_requests"] == "False"
    assert flags["--logits_all"] == "False"
    assert flags["--port"] == "8123"
    assert flags["--host"] == "127.0.0.1"


FAKE_LLAMA_MAIN = """
import time
time.sleep(600)
"""

ORPHANING_PARENT = """
import subprocess, sys, time
from pathlib import Path
from orchestrator.local_server import ServerLaunch, llama_cpp_command
launch = ServerLaunch(
    model_path=Path("m.gguf"), host="127.0.0.1", port=1, threads=1, n_ctx=512, model_alias="m"
)
child = subprocess.Popen(
    llama_cpp_command(launch), start_new_session=True, stdout=subprocess.DEVNULL
)
print(child.pid, flush=True)
time.sleep(600)
"""


def test_llama_cpp_command_server_dies_with_its_parent(tmp_path: Path) -> None:
    """A server whose owner was SIGKILLed (no cleanup ran) kills its own process group."""
    server_pkg = tmp_path / "llama_cpp" / "server"
    server_pkg.mkdir(parents=True)
    (tmp_path / "llama_cpp" / "__init__.py").write_text("")
    (server_pkg / "__init__.py").write_text("")
    (server_pkg / "__main__.py").write_text(FAKE_LLAMA_MAIN)
    repo = Path(local_model.__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(repo)])}
    parent = subprocess.Popen(
        [sys.executable, "-c", ORPHANING_PARENT], stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        assert parent.stdout is not None
        server_pid = int(parent.stdout.readline())
        server = os.pidfd_open(server_pid)
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
    try:
        readable, _, _ = select.select([server], [], [], 5.0)
    finally:
        os.close(server)
    assert readable, "the orphaned server kept running"


def test_llama_cpp_capabilities_describe_the_server() -> None:
    caps = LLAMA_CPP_CAPABILITIES
    assert caps.structured_output == "json_object_schema"
    assert caps.tool_calls_need_named_choice
    assert caps.parallel_requests == 1
    assert not caps.responses_api
    assert caps.native_tools == frozenset()
    assert not caps.prompt_caching


# --- server lifecycle ----------------------------------------------------------------------


async def test_server_starts_and_stops_its_process(tmp_path: Path, state_dir: Path) -> None:
    server = make_server(tmp_path, state_dir, "ok")
    async with server:
        pid = server.pid
        assert pid is not None
        assert server.is_alive()
        assert server.base_url.startswith("http://127.0.0.1:")
    assert server.pid is None
    assert not is_running(pid)
    assert "GET /v1/models" in (tmp_path / "logs" / "local-model-server.log").read_text()


@pytest.mark.parametrize(
    ("setting", "seen"), [(None, "passive"), ("active", "active")], ids=["default", "user-set"]
)
async def test_server_threads_wait_passively_unless_the_user_says(
    tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch, setting: str | None, seen: str
) -> None:
    """Spinning OpenMP threads made generation 25x slower on a loaded 2-core machine."""
    if setting is None:
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    else:
        monkeypatch.setenv("OMP_WAIT_POLICY", setting)
    async with make_server(tmp_path, state_dir, "ok"):
        pass
    log = (tmp_path / "logs" / "local-model-server.log").read_text()
    assert f"OMP_WAIT_POLICY={seen}" in log


async def test_server_port_already_taken_is_a_clear_error(
    tmp_path: Path, state_dir: Path, listening_socket: socket.socket
) -> None:
    port = listening_socket.getsockname()[1]
    server = make_server(tmp_path, state_dir, "ok", port=port)
    with pytest.raises(LocalModelError, match=f"port {port} .* already in use"):
        await server.__aenter__()
    assert server.pid is None


async def test_server_without_port_avoids_a_taken_one(
    tmp_path: Path, state_dir: Path, listening_socket: socket.socket
) -> None:
    taken = listening_socket.getsockname()[1]
    async with make_server(tmp_path, state_dir, "ok") as server:
        assert not server.base_url.endswith(f":{taken}")


@pytest.mark.timeout(60)
async def test_server_exiting_during_startup_reports_log_tail(
    tmp_path: Path, state_dir: Path
) -> None:
    server = make_server(tmp_path, state_dir, "exit", ready_timeout_s=45)
    started = time.monotonic()
    with pytest.raises(LocalModelError, match="exited with code 3") as info:
        await server.__aenter__()
    assert time.monotonic() - started < 30  # at the exit, not at the 45 s ready timeout
    assert "failed to load model (corrupt GGUF)" in str(info.value)
    assert server.pid is None


@pytest.mark.timeout(60)
async def test_server_never_ready_fails_within_timeout(tmp_path: Path, state_dir: Path) -> None:
    server = make_server(tmp_path, state_dir, "silent", ready_timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(LocalModelError, match=r"not ready after 1s") as info:
        await server.__aenter__()
    assert time.monotonic() - started < 30  # a bound, not a benchmark: it gives up, never hangs
    assert "mode=silent" in str(info.value)
    assert server.pid is None


async def test_server_cancelled_during_startup_leaves_no_process(
    tmp_path: Path, state_dir: Path
) -> None:
    """Cancelling start-up kills the server's whole process group, grandchildren included."""
    server = make_server(tmp_path, state_dir, "silent", ready_timeout_s=30)
    pid_pipe = state_dir / "child.pid"
    os.mkfifo(pid_pipe)  # the fake's write blocks until we read: a sync point without sleeps
    pids: list[int] = []

    async def start() -> None:
        async with server:
            pytest.fail("the silent server cannot become ready")

    async def cancel_once_spawned(scope: anyio.CancelScope) -> None:
        with anyio.fail_after(5):
            child = await anyio.to_thread.run_sync(pid_pipe.read_text, abandon_on_cancel=True)
        pids.extend(p for p in (server.pid, int(child)) if p is not None)
        scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(start)
        tg.start_soon(cancel_once_spawned, tg.cancel_scope)
    assert len(pids) == 2
    assert server.pid is None
    for pid in pids:
        await wait_for_exit(pid)


# --- the supervising client ----------------------------------------------------------------


async def test_client_completes_through_the_server(tmp_path: Path, state_dir: Path) -> None:
    async with make_server(tmp_path, state_dir, "ok") as server:
        client = LocalModelClient(server)
        try:
            reply = await client.complete(hello())
        finally:
            await client.aclose()
    assert reply.text.startswith("hello from ")
    assert reply.usage.output_tokens == 4
    assert client.capabilities is LLAMA_CPP_CAPABILITIES
    assert isinstance(client, StreamingModelClient)


async def test_client_restarts_a_dead_server_and_retries(tmp_path: Path, state_dir: Path) -> None:
    async with make_server(tmp_path, state_dir, "crash_once") as server:
        first_pid = server.pid
        client = LocalModelClient(server)
        try:
            reply = await client.complete(hello())
        finally:
            await client.aclose()
        assert client.restarts == 1
        assert server.starts == 2
        assert server.pid != first_pid
        assert reply.text == f"hello from {server.pid}"


async def test_client_stream_restarts_a_dead_server_before_first_event(
    tmp_path: Path, state_dir: Path
) -> None:
    async with make_server(tmp_path, state_dir, "crash_once") as server:
        client = LocalModelClient(server)
        try:
            events = [event async for event in client.stream(hello())]
        finally:
            await client.aclose()
        assert client.restarts == 1
        expected = f"hello from {server.pid}"
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert "".join(deltas) == expected
    assert isinstance(events[-1], ReplyDone)
    assert events[-1].reply.text == expected


async def test_client_gives_up_after_its_restart_budget(tmp_path: Path, state_dir: Path) -> None:
    async with make_server(tmp_path, state_dir, "crash_always") as server:
        client = LocalModelClient(server, max_restarts=2)
        try:
            with pytest.raises(LocalModelError, match="died again after 2 restart") as info:
                await client.complete(hello())
        finally:
            await client.aclose()
    assert "segmentation fault" in str(info.value)
    assert isinstance(info.value.__cause__, ModelAPIError)
    assert server.starts == 3


async def test_client_does_not_restart_on_http_errors(tmp_path: Path, state_dir: Path) -> None:
    async with make_server(tmp_path, state_dir, "error_500") as server:
        client = LocalModelClient(server)
        try:
            with pytest.raises(ModelAPIError) as info:
                await client.complete(hello())
        finally:
            await client.aclose()
        assert info.value.status_code == 500
        assert client.restarts == 0
        assert server.is_alive()
