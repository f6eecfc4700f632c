"""The embedded model's server process: llama.cpp's OpenAI-compatible server on a loopback port,
in its own process group, started, probed, restarted and torn down by an `async with` block."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, NoReturn

import anyio
import anyio.abc

from .errors import LocalModelError
from .settings import process_environment, secret_variables

LOCAL_MODEL_ID = "smollm2-135m"
"""The model id the embedded server answers to (its `--model_alias`)."""

_HOST = "127.0.0.1"
_POLL_INTERVAL_S = 0.1
_PROBE_TIMEOUT_S = 2.0
_KILL_WAIT_S = 5.0
_PORT_ATTEMPTS = 3
_LOG_NAME = "local-model-server.log"
_TAIL_BYTES = 4000
_TAIL_LINES = 25
# llama_cpp.server reads these (case-insensitively) from the environment, and HOST / PORT even
# override its command line, so a stray PORT=3000 would make it listen where we never look.
_SERVER_ENV_NAMES = frozenset(
    {"config_file", "host", "port", "model", "model_alias", "api_key", "n_ctx", "n_threads"}
    | {"n_threads_batch", "n_batch", "n_ubatch", "logits_all", "interrupt_requests", "verbose"}
    | {"use_mlock", "use_mmap", "chat_format", "root_path", "ssl_keyfile", "ssl_certfile"}
    | {"n_gpu_layers", "embedding", "cache", "seed", "vocab_only", "clip_model_path"}
)

# llama.cpp's OpenMP threads spin between the steps of every token. On a busy machine with as many
# threads as cores, a spinning thread waits for one that is not scheduled: two threads on two
# loaded cores generated 1.8 s per token spinning and 0.065 s with passive waits (one thread:
# 0.073 s). The user's own OMP_WAIT_POLICY wins.
_THREAD_WAITS = {"OMP_WAIT_POLICY": "passive"}


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerLaunch:
    """Everything a command builder needs to start one server process."""

    model_path: Path
    host: str
    port: int
    threads: int
    n_ctx: int
    model_alias: str


CommandBuilder = Callable[[ServerLaunch], Sequence[str]]
"""Turns a launch into an argv; tests substitute small fake servers."""


# Runs `python -m llama_cpp.server` with a watchdog thread: the server lives in its own session
# (so a terminal's Ctrl-C reaches only us, and we stop it in order), which also means nothing
# stops it if we die without cleaning up (SIGKILL, or SIGTERM with no handler). It follows us.
_LAUNCHER = """\
import os, runpy, signal, sys, threading, time
parent = int(sys.argv.pop(1))
def follow_parent():
    while os.getppid() == parent:
        time.sleep(0.5)
    if os.getpgrp() == os.getpid():  # only a group of our own
        os.killpg(os.getpgrp(), signal.SIGKILL)
    os._exit(1)
threading.Thread(target=follow_parent, daemon=True).start()
sys.argv[0] = "llama_cpp.server"
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


def llama_cpp_command(launch: ServerLaunch) -> list[str]:
    """The argv running `python -m llama_cpp.server` (in this interpreter) for this launch.

    The server is wrapped in a few lines that kill its process group when this process dies.
    """
    return [
        sys.executable, "-c", _LAUNCHER, str(os.getpid()),
        "--model", str(launch.model_path),
        "--model_alias", launch.model_alias,
        "--host", launch.host,
        "--port", str(launch.port),
        "--n_ctx", str(launch.n_ctx),
        # The default is one thread; batch threads default to two.
        "--n_threads", str(launch.threads),
        "--n_threads_batch", str(launch.threads),
        # True makes every new request silently cut off the one being streamed.
        "--interrupt_requests", "False",
        # True keeps logits for every position: a n_ctx x vocab float buffer.
        "--logits_all", "False",
        # Pinning pages needs CAP_IPC_LOCK or a large RLIMIT_MEMLOCK; mmap alone is enough.
        "--use_mlock", "False",
    ]  # fmt: skip


class _PortLostError(Exception):
    """Another process took an automatically chosen port between choice and bind."""


class LocalModelServer:
    """A llama.cpp OpenAI-compatible server on loopback, owned by an `async with` block.

    The server runs in its own process group with its output in a log file. Leaving the block
    (normally, by an exception or by cancellation) terminates the whole group.
    """

    def __init__(
        self,
        model_path: Path,
        *,
        threads: int,
        port: int | None = None,
        n_ctx: int = 8192,
        model_alias: str = LOCAL_MODEL_ID,
        log_dir: Path | None = None,
        ready_timeout_s: float = 120.0,
        stop_grace_s: float = 5.0,
        command: CommandBuilder = llama_cpp_command,
    ) -> None:
        """Describe a server; nothing starts until `async with`.

        Args:
            model_path: The GGUF file to serve.
            threads: llama.cpp threads for generation and prompt processing.
            port: A fixed loopback port, or None to pick a free one.
            n_ctx: Context window in tokens.
            model_alias: The model id the server reports.
            log_dir: Where the server's log goes; None means a temporary directory.
            ready_timeout_s: How long start-up may take before it counts as failed.
            stop_grace_s: Time between SIGTERM and SIGKILL on shutdown.
            command: Builds the argv; the default runs llama_cpp.server.
        """
        self._model_path = model_path
        self._threads = max(1, threads)
        self._requested_port = port
        self._n_ctx = n_ctx
        self._model_alias = model_alias
        self._log_dir = log_dir
        self._ready_timeout_s = ready_timeout_s
        self._stop_grace_s = stop_grace_s
        self._command = command
        self._temp_dir: tempfile.TemporaryDirectory[str] | None = None
        self._process: anyio.abc.Process | None = None
        self._port: int | None = None
        self._log_offset = 0
        self.starts = 0
        """Times a server process was launched and became ready (restarts included)."""

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>`, without the `/v1` suffix."""
        if self._port is None:
            raise LocalModelError("the local model server has not been started")
        return f"http://{_HOST}:{self._port}"

    @property
    def pid(self) -> int | None:
        """The server's process id (also its process group id), while one is running."""
        return None if self._process is None else self._process.pid

    @property
    def log_path(self) -> Path:
        """The file that collects the server's stdout and stderr."""
        if self._log_dir is not None:
            return self._log_dir / _LOG_NAME
        if self._temp_dir is None:
            self._temp_dir = tempfile.TemporaryDirectory(prefix="orchestrator-local-model-")
        return Path(self._temp_dir.name) / _LOG_NAME

    def is_alive(self) -> bool:
        """Whether the server process is running (it may still be starting)."""
        return self._process is not None and self._process.returncode is None

    async def has_exited(self, *, within_s: float = 1.0) -> bool:
        """Whether the server process has exited, waiting up to `within_s` for it to do so."""
        process = self._process
        if process is None:
            return True
        with anyio.move_on_after(within_s):
            await process.wait()
        return process.returncode is not None

    async def __aenter__(self) -> LocalModelServer:
        try:
            await self._launch()
        except BaseException:
            self._remove_temp_dir()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop()
        self._remove_temp_dir()

    async def restart(self) -> None:
        """Stop the server (if it still runs) and start it again, on the same port if possible."""
        await self._stop()
        await self._launch()

    def log_tail(self) -> str:
        """The last lines the current (or last) server process wrote."""
        try:
            with self.log_path.open("rb") as log:
                size = log.seek(0, os.SEEK_END)
                log.seek(max(self._log_offset, size - _TAIL_BYTES))
                data = log.read()
        except OSError as exc:
            return f"(no server log: {exc})"
        lines = data.decode("utf-8", errors="replace").splitlines()[-_TAIL_LINES:]
        return "\n".join(lines) if lines else "(the server wrote nothing)"

    async def _launch(self) -> None:
        for _ in range(_PORT_ATTEMPTS):
            port = self._claim_port()
            try:
                await self._start_process(port)
            except _PortLostError:
                continue
            self.starts += 1
            return
        raise LocalModelError(f"could not find a free loopback port in {_PORT_ATTEMPTS} tries")

    def _claim_port(self) -> int:
        if self._requested_port is not None:
            if not _is_port_free(self._requested_port):
                raise LocalModelError(
                    f"port {self._requested_port} on {_HOST} is already in use; stop whatever "
                    "listens there or leave the port unset to pick a free one"
                )
            return self._requested_port
        if self._port is not None and _is_port_free(self._port):
            return self._port  # a restart keeps its base URL when it can
        return _free_port()

    async def _start_process(self, port: int) -> None:
        self._port = port
        launch = ServerLaunch(
            model_path=self._model_path,
            host=_HOST,
            port=port,
            threads=self._threads,
            n_ctx=self._n_ctx,
            model_alias=self._model_alias,
        )
        log = await anyio.to_thread.run_sync(self._open_log)
        try:
            # Shielded so that a cancellation cannot land between spawn and bookkeeping: it is
            # delivered in the readiness wait below, whose cleanup stops the process group.
            with anyio.CancelScope(shield=True):
                self._process = await anyio.open_process(
                    list(self._command(launch)),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=_server_environment(),
                    start_new_session=True,
                )
        except OSError as exc:
            raise LocalModelError(f"could not start the local model server: {exc}") from exc
        finally:
            log.close()  # the child holds its own descriptor
        try:
            await self._wait_until_ready(port)
        except BaseException:
            await self._stop()
            raise

    def _remove_temp_dir(self) -> None:
        if self._temp_dir is not None:
            self._temp_dir.cleanup()
            self._temp_dir = None

    def _open_log(self) -> IO[bytes]:
        path = self.log_path
        path.parent.mkdir(parents=True, exist_ok=True)
        log = path.open("ab")
        self._log_offset = log.tell()
        return log

    async def _wait_until_ready(self, port: int) -> None:
        process = self._process
        assert process is not None
        try:
            with anyio.fail_after(self._ready_timeout_s):
                while not await _answers_models(port):
                    if process.returncode is not None:
                        await self._raise_exited(process.returncode, port)
                    await anyio.sleep(_POLL_INTERVAL_S)
        except TimeoutError:
            tail = await anyio.to_thread.run_sync(self.log_tail)
            raise LocalModelError(
                f"the local model server on port {port} was not ready after "
                f"{self._ready_timeout_s:g}s (ORCH_LOCAL_READY_TIMEOUT_S); log "
                f"{self.log_path}:\n{tail}"
            ) from None

    async def _raise_exited(self, returncode: int, port: int) -> NoReturn:
        if self._requested_port is None and not _is_port_free(port):
            raise _PortLostError
        tail = await anyio.to_thread.run_sync(self.log_tail)
        raise LocalModelError(
            f"the local model server exited with code {returncode} during start-up; "
            f"log {self.log_path}:\n{tail}"
        )

    async def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(self._stop_grace_s + _KILL_WAIT_S):
            _signal_group(process.pid, signal.SIGTERM)
            with anyio.move_on_after(self._stop_grace_s):
                await process.wait()
            # Also reaches children the server left behind in its group.
            _signal_group(process.pid, signal.SIGKILL)
            await process.aclose()


async def _answers_models(port: int) -> bool:
    """Whether `GET /v1/models` on the port answers 200 (a bare HTTP/1.1 exchange)."""
    request = f"GET /v1/models HTTP/1.1\r\nHost: {_HOST}:{port}\r\nConnection: close\r\n\r\n"
    try:
        with anyio.fail_after(_PROBE_TIMEOUT_S):
            async with await anyio.connect_tcp(_HOST, port) as stream:
                await stream.send(request.encode("ascii"))
                head = await stream.receive(64)
    except (OSError, TimeoutError, anyio.EndOfStream, anyio.BrokenResourceError):
        return False
    return head.split(b" ", 2)[1:2] == [b"200"]


def _server_environment() -> dict[str, str]:
    # No credentials either: the server needs none, and a child's environ is readable by others.
    env = process_environment()
    secret = secret_variables(env)
    clean = {k: v for k, v in env.items() if k.lower() not in _SERVER_ENV_NAMES and k not in secret}
    return {**_THREAD_WAITS, **clean}


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # As uvicorn does: a port held only by TIME_WAIT connections counts as free.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((_HOST, port))
    except OSError:
        sock.close()
        raise
    return sock


def _is_port_free(port: int) -> bool:
    try:
        _bind(port).close()
    except OSError:
        return False
    return True


def _free_port() -> int:
    with _bind(0) as sock:
        port: int = sock.getsockname()[1]
    return port


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)
