"""Upstream llama.cpp `llama-server` for the conformance bench: find the cached build or build it
from the llama.cpp sources vendored in the llama-cpp-python sdist, and serve a GGUF on loopback.

The build is CPU-generic (`GGML_NATIVE=OFF`, no AMX: some VMs advertise AMX and fault on it),
static, without curl, OpenSSL or the web UI, and lands in
`~/.cache/orchestrator/llama-server/<llama-cpp-python version>/` with Qwen2.5's chat template
(ChatML, as SmolLM2's own, plus tools). The server gets a variant of it whose tool calls are bare
JSON objects instead of `<tool_call>`-tagged ones: SmolLM2-135M never opens the tag by itself,
so under the `<tool_call>` format even `tool_choice: "required"` lets it ramble to the token cap;
with bare JSON calls llama.cpp's template analysis still finds the call format and the model calls.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.abc
import httpx2

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
"""The sdist whose vendored llama.cpp is built (the version the `local` extra pins)."""
TEMPLATE = "Qwen-Qwen2.5-7B-Instruct.jinja"
"""A tool-capable ChatML template from llama.cpp's `models/templates/`."""
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DGGML_NATIVE=OFF",
    "-DGGML_AMX_TILE=OFF",
    "-DGGML_AMX_INT8=OFF",
    "-DGGML_AMX_BF16=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",  # else the configure step downloads the UI
    "-DGGML_CCACHE=OFF",
)
TOOL_TEMPLATE = "smollm2-bare-json-tools.jinja"
"""The served variant of `TEMPLATE`, written next to it."""
_TAG_EDITS = (
    ('\'\\n<tool_call>\\n{"name": "\'', '\'\\n{"name": "\''),
    ("'}\\n</tool_call>'", "'}'"),
    (
        'within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": '
        '<function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call>',
        'as one JSON object:\\n{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}',
    ),
)
MODEL_ALIAS = "smollm2-135m"
_HOST = "127.0.0.1"
_READY_TIMEOUT_S = 120.0
_STOP_GRACE_S = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerBuild:
    """A built `llama-server` and the template it serves with."""

    binary: Path
    template: Path
    info: dict[str, object]
    """What `build-info.json` says: version, llama.cpp commit, flags, build seconds."""


def cache_dir(version: str = LLAMA_CPP_PYTHON_VERSION) -> Path:
    """Where the build of `version` is cached."""
    return Path.home() / ".cache" / "orchestrator" / "llama-server" / version


def find_build(version: str = LLAMA_CPP_PYTHON_VERSION) -> ServerBuild | None:
    """The cached build of `version`, or None when it is not (completely) there."""
    root = cache_dir(version)
    binary, template, info = root / "llama-server", root / TEMPLATE, root / "build-info.json"
    if not (binary.is_file() and template.is_file() and info.is_file()):
        return None
    return ServerBuild(binary=binary, template=template, info=json.loads(info.read_text()))


def build(version: str = LLAMA_CPP_PYTHON_VERSION, *, jobs: int = 2) -> ServerBuild:
    """Download the sdist, build `llama-server` and cache it with its template.

    Raises:
        subprocess.CalledProcessError: pip, cmake or the compiler failed (their output is shown).
    """
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="llama-server-build-") as tmp:
        work = Path(tmp)
        pip = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps"]
        subprocess.run([*pip, f"llama-cpp-python=={version}", "-d", str(work)], check=True)
        [sdist] = work.glob("llama_cpp_python-*.tar.gz")
        with tarfile.open(sdist) as archive:
            archive.extractall(work, filter="data")
        source = work / f"llama_cpp_python-{version}" / "vendor" / "llama.cpp"
        out = work / "build"
        generator = ["-G", "Ninja"] if shutil.which("ninja") else []
        subprocess.run(
            ["cmake", "-S", str(source), "-B", str(out), *generator, *CMAKE_FLAGS], check=True
        )
        subprocess.run(
            ["cmake", "--build", str(out), "--target", "llama-server", f"-j{jobs}"], check=True
        )
        root = cache_dir(version)
        root.mkdir(parents=True, exist_ok=True)
        shutil.copy2(out / "bin" / "llama-server", root / "llama-server")
        shutil.copy2(source / "models" / "templates" / TEMPLATE, root / TEMPLATE)
        info: dict[str, object] = {
            "llama_cpp_python": version,
            "llama_cpp_commit": _commit(out),
            "cmake_flags": list(CMAKE_FLAGS),
            "jobs": jobs,
            "build_seconds": round(time.monotonic() - started),
        }
        (root / "build-info.json").write_text(json.dumps(info, indent=2) + "\n")
    found = find_build(version)
    assert found is not None
    return found


def _commit(build_dir: Path) -> str:
    """The llama.cpp commit the build recorded (`LLAMA_COMMIT`), or "unknown"."""
    info = (build_dir / "common" / "build-info.cpp").read_text(errors="replace")
    for line in info.splitlines():
        if "LLAMA_COMMIT =" in line:
            return line.split('"')[1]
    return "unknown"


def tool_template(server: ServerBuild) -> Path:
    """The served template: `TEMPLATE` with bare-JSON tool calls (written on first use).

    Raises:
        ValueError: the template is not the one the edits were made for.
    """
    target = server.template.with_name(TOOL_TEMPLATE)
    if target.is_file():
        return target
    text = server.template.read_text()
    for old, new in _TAG_EDITS:
        if old not in text:
            raise ValueError(f"{server.template} changed: {old!r} not found")
        text = text.replace(old, new)
    target.write_text(text)
    return target


def server_command(
    server: ServerBuild, model: Path, *, port: int, threads: int, n_ctx: int
) -> list[str]:
    """The argv serving `model` on loopback with a tool-capable template, one slot."""
    return [
        str(server.binary),
        "--model", str(model),
        "--alias", MODEL_ALIAS,
        "--host", _HOST,
        "--port", str(port),
        "--ctx-size", str(n_ctx),
        "--threads", str(threads),
        "--parallel", "1",
        "--jinja",
        "--chat-template-file", str(tool_template(server)),
        "--no-webui",
        "--seed", "42",
        # Reusing cached prompt prefixes changes the numerics, and a 135M model's greedy path
        # with them: without the cache every request is answered the same way on every run.
        "--no-cache-prompt",
        "--cache-ram", "0",
    ]  # fmt: skip


@contextlib.asynccontextmanager
async def serve(
    server: ServerBuild, model: Path, *, log: Path, threads: int = 1, n_ctx: int = 4096
) -> AsyncGenerator[str]:
    """Run the server until the block ends; yields its `/v1` base URL.

    One thread by default: llama.cpp's threads spin while they wait, and on a shared 2-core
    machine two of them next to other work generate ~4 tokens/s instead of ~15.

    Raises:
        RuntimeError: the server exited or did not answer `/health` in time (with its log tail).
    """
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMA_ARG_")}
    argv = server_command(server, model, port=port, threads=threads, n_ctx=n_ctx)
    with log.open("wb") as sink:
        process = await anyio.open_process(argv, stdout=sink, stderr=subprocess.STDOUT, env=env)
        try:
            await _wait_ready(process, f"http://{_HOST}:{port}", log)
            yield f"http://{_HOST}:{port}/v1"
        finally:
            with anyio.CancelScope(shield=True):
                await _stop(process)


async def _wait_ready(process: anyio.abc.Process, url: str, log: Path) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT_S
    async with httpx2.AsyncClient(timeout=2.0) as http:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"llama-server exited ({process.returncode}):\n{_tail(log)}")
            with contextlib.suppress(httpx2.HTTPError):
                if (await http.get(f"{url}/health")).status_code == 200:
                    return
            await anyio.sleep(0.2)
    raise RuntimeError(f"llama-server not ready after {_READY_TIMEOUT_S}s:\n{_tail(log)}")


async def _stop(process: anyio.abc.Process) -> None:
    if process.returncode is None:
        process.terminate()
        with anyio.move_on_after(_STOP_GRACE_S):
            await process.wait()
    if process.returncode is None:
        process.kill()
        await process.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((_HOST, 0))
        return int(probe.getsockname()[1])


def _tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m bench.llama_server`: build (or show) the cached llama-server."""
    found = find_build()
    if found is None or (argv or sys.argv[1:]) == ["--rebuild"]:
        found = build()
    print(json.dumps({"binary": str(found.binary), **found.info}, indent=2))


if __name__ == "__main__":
    main()
