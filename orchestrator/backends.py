"""Choosing and opening the model backend of a run: the OpenAI API, an OpenAI-compatible server,
or the embedded local model (when there is neither a key nor a base URL)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Literal
from urllib.parse import urlsplit

import anyio

from .engine_options import RoleOptions
from .errors import ConfigError
from .llm import ModelCapabilities, ModelClient
from .llm_openai_chat import OpenAIChatClient
from .llm_openai_responses import OpenAIResponsesClient
from .llm_openai_shape import SERVER_CAPABILITIES, ServerKind
from .local_model import (
    LOCAL_MODEL_ID,
    CommandBuilder,
    LocalModelClient,
    LocalModelServer,
    find_embedded_model,
    llama_cpp_command,
)
from .models import DEFAULT_LADDER, TierSpec
from .settings import ApiStyle, ServerPreset, Settings, cpu_count

BackendKind = Literal["openai", "compatible", "local"]

LOCAL_NOTICE = (
    "embedded 135M model: for trying the framework, not for real work; "
    "set OPENAI_API_KEY or --base-url"
)
"""Shown once when a run falls back to the embedded model."""

LOCAL_ROLE_OPTIONS = RoleOptions(temperature=0.0, max_output_tokens=512, compact=True)
"""Deterministic and bounded: a 135M model at ~100 tokens/s must not ramble up to its context."""

TIER_NAMES = ("mini", "base", "frontier")
"""Names of the ladder's rungs, bottom first; `Settings.models` beyond three get tier4, ..."""

PRESET_SERVERS: dict[ServerPreset, ServerKind] = {
    "llama.cpp": "llama-server",
    "vllm": "vllm",
    "ollama": "ollama",
}
"""`Settings.server` (`--server`) → its `SERVER_CAPABILITIES` preset."""

_OPENAI_HOST = "api.openai.com"
_CLOSE_TIMEOUT_S = 5.0

_APIClient = OpenAIChatClient | OpenAIResponsesClient


@dataclass(frozen=True, slots=True, kw_only=True)
class Backend:
    """An open model backend: the client, the tier ladder to use with it, and what to tell users."""

    client: ModelClient
    ladder: tuple[TierSpec, ...]
    """Tiers bottom first; every tier of the embedded backend uses the same local model."""
    notice: str | None = None
    """A one-time message for the user (printed once by the CLI), or None."""
    description: str
    """One line naming the backend, for logs and `--help`-style output."""
    role_options: RoleOptions | None = None
    """Generation options the roles should use with this backend; None keeps their defaults."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BackendChoice:
    """Which backend the settings select, decided without any I/O."""

    kind: BackendKind
    api_style: ApiStyle
    """The OpenAI API the client speaks; always chat for the embedded model."""


def choose_backend(settings: Settings) -> BackendChoice:
    """Pick the backend: explicit `backend` wins; `auto` prefers a base URL, then a key, then local.

    A base URL on api.openai.com counts as OpenAI. The API style defaults to responses for
    OpenAI and chat for any other server; `Settings.api_style` overrides it.
    """
    kind: BackendKind
    if settings.backend != "auto":
        kind = settings.backend
    elif settings.base_url is not None:
        kind = "openai" if _is_openai_url(settings.base_url) else "compatible"
    elif settings.api_key is not None:
        kind = "openai"
    else:
        kind = "local"
    if kind == "local":
        return BackendChoice(kind=kind, api_style="chat")
    if settings.api_style is not None:
        return BackendChoice(kind=kind, api_style=settings.api_style)
    is_openai = kind == "openai" or _is_openai_url(settings.base_url)
    return BackendChoice(kind=kind, api_style="responses" if is_openai else "chat")


def build_ladder(
    models: Sequence[str] | None, default: tuple[TierSpec, ...]
) -> tuple[TierSpec, ...]:
    """`default`, or one tier per model id (bottom first) when `models` is given."""
    if not models:
        return default
    return tuple(
        TierSpec(name=TIER_NAMES[i] if i < len(TIER_NAMES) else f"tier{i + 1}", model=model)
        for i, model in enumerate(models)
    )


def tier_names(settings: Settings) -> tuple[str, ...]:
    """The names of the tiers a run with `settings` has (before any backend is opened)."""
    return tuple(tier.name for tier in build_ladder(settings.models, DEFAULT_LADDER))


@asynccontextmanager
async def open_backend(
    settings: Settings, *, local_command: CommandBuilder = llama_cpp_command
) -> AsyncGenerator[Backend]:
    """Open the backend the settings select; leaving the block closes it (and its server).

    Args:
        settings: Where the choice and its parameters come from.
        local_command: Builds the embedded server's argv (tests substitute fakes).

    Raises:
        ConfigError: an explicit choice lacks what it needs (a key, a base URL, model ids).
        LocalModelError: the embedded model is missing or its server does not start.
    """
    choice = choose_backend(settings)
    if settings.server is not None and choice.kind != "compatible":
        raise ConfigError(
            f"--server {settings.server} (ORCH_SERVER) describes a self-hosted server, but the "
            f"backend is {choice.kind}: also give its --base-url (OPENAI_BASE_URL), or drop it"
        )
    if choice.kind == "local":
        async with _open_local(settings, local_command) as backend:
            yield backend
        return
    backend, client = _remote_backend(settings, choice)
    try:
        yield backend
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_TIMEOUT_S):
            await client.aclose()


@asynccontextmanager
async def _open_local(settings: Settings, command: CommandBuilder) -> AsyncGenerator[Backend]:
    model_path = find_embedded_model(settings.local_model_path)
    threads = settings.local_threads or cpu_count()
    server = LocalModelServer(
        model_path,
        threads=threads,
        n_ctx=settings.local_n_ctx,
        log_dir=settings.run_root.parent / "local-model",
        ready_timeout_s=settings.local_ready_timeout_s,
        command=command,
    )
    async with server:
        client = LocalModelClient(server, timeout_s=settings.request_timeout_s)
        try:
            yield Backend(
                client=client,
                ladder=build_ladder(settings.models, _local_ladder()),
                notice=LOCAL_NOTICE,
                role_options=LOCAL_ROLE_OPTIONS,
                description=(
                    f"embedded {model_path.name} via llama.cpp at {server.base_url}/v1 "
                    f"({threads} threads, n_ctx {settings.local_n_ctx})"
                ),
            )
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_TIMEOUT_S):
                await client.aclose()


def _remote_backend(settings: Settings, choice: BackendChoice) -> tuple[Backend, _APIClient]:
    if choice.kind == "openai":
        api_key: str | None = settings.require_api_key()
        capabilities = None  # the client's defaults describe OpenAI itself
        ladder = build_ladder(settings.models, DEFAULT_LADDER)
        where = settings.base_url or "OpenAI"
    else:
        if settings.base_url is None:
            raise ConfigError(
                "backend 'compatible' needs a server: set OPENAI_BASE_URL or --base-url"
            )
        api_key = settings.api_key.get_secret_value() if settings.api_key else None
        capabilities = compatible_capabilities(settings, choice.api_style)
        ladder = _compatible_ladder(settings, settings.base_url)
        where = settings.base_url
    client = _api_client(settings, choice, api_key=api_key, capabilities=capabilities)
    models = ", ".join(tier.model for tier in ladder)
    backend = Backend(
        client=client,
        ladder=ladder,
        description=f"{choice.kind} {choice.api_style} API at {where} ({models})",
    )
    return backend, client


def _api_client(
    settings: Settings,
    choice: BackendChoice,
    *,
    api_key: str | None,
    capabilities: ModelCapabilities | None,
) -> _APIClient:
    if choice.api_style == "responses":
        return OpenAIResponsesClient(
            api_key=api_key,
            base_url=settings.base_url,
            timeout_s=settings.request_timeout_s,
            capabilities=capabilities,
        )
    return OpenAIChatClient(
        api_key=api_key,
        base_url=settings.base_url,
        timeout_s=settings.request_timeout_s,
        capabilities=capabilities,
    )


def compatible_capabilities(settings: Settings, api_style: ApiStyle) -> ModelCapabilities:
    """The preset of `Settings.server` (an unknown server's without one), for `api_style`;
    `Settings.structured_output`, when set, wins over the preset's style."""
    kind: ServerKind = "compatible" if settings.server is None else PRESET_SERVERS[settings.server]
    preset = SERVER_CAPABILITIES[kind]
    return replace(
        preset,
        structured_output=settings.structured_output or preset.structured_output,
        responses_api=api_style == "responses",
    )


def _compatible_ladder(settings: Settings, base_url: str) -> tuple[TierSpec, ...]:
    if settings.models:
        return build_ladder(settings.models, DEFAULT_LADDER)
    if _is_openai_url(base_url):
        return DEFAULT_LADDER
    raise ConfigError(
        f"name the models {base_url} serves: set ORCH_MODELS (comma-separated, cheapest first; "
        "one id is enough) or Settings(models=...)"
    )


def _local_ladder() -> tuple[TierSpec, ...]:
    return tuple(TierSpec(name=name, model=LOCAL_MODEL_ID) for name in TIER_NAMES)


def _is_openai_url(base_url: str | None) -> bool:
    return base_url is not None and urlsplit(base_url).hostname == _OPENAI_HOST
