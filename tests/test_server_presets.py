"""`--server llama.cpp|vllm|ollama` (ORCH_SERVER, `Settings.server`): the backend a preset opens
has that server's capabilities, and what it sends fits the server's recorded or documented
payloads (tests/data/server_payloads); without a preset, the unknown-compatible defaults fit all."""

from __future__ import annotations

from dataclasses import replace
from typing import get_args

import pytest

from bench.llama_server_cases import CAP_TOKENS
from bench.llama_server_cases import capabilities as bench_capabilities
from orchestrator import ConfigError
from orchestrator.backends import PRESET_SERVERS, compatible_capabilities, open_backend
from orchestrator.llm import ModelCapabilities, ModelRequest
from orchestrator.llm_openai_chat import chat_body
from orchestrator.llm_openai_responses import responses_body
from orchestrator.llm_openai_shape import COMPATIBLE_CAPABILITIES, SERVER_CAPABILITIES
from orchestrator.settings import ApiStyle, ServerPreset, Settings

from .cli_harness import UNREACHABLE
from .test_server_conformance_payloads import SERVERS, chat_problems, responses_problems, variants

PRESETS: tuple[ServerPreset, ...] = get_args(ServerPreset)
STYLES: tuple[ApiStyle, ...] = ("chat", "responses")


async def opened(style: ApiStyle, **fields: object) -> ModelCapabilities:
    settings = Settings(base_url=UNREACHABLE, models=("m",), api_style=style, **fields)  # pyright: ignore[reportArgumentType]
    async with open_backend(settings) as backend:
        return backend.client.capabilities


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("server", PRESETS)
async def test_server_preset_opens_with_its_capabilities(
    server: ServerPreset, style: ApiStyle
) -> None:
    caps = await opened(style, server=server)

    expected = SERVER_CAPABILITIES[PRESET_SERVERS[server]]
    assert caps == replace(expected, responses_api=style == "responses")


@pytest.mark.parametrize("style", STYLES)
async def test_unknown_server_gets_the_compatible_defaults(style: ApiStyle) -> None:
    caps = await opened(style)

    assert caps == replace(COMPATIBLE_CAPABILITIES, responses_api=style == "responses")
    assert caps.default_max_output_tokens == 4096
    assert not caps.tools_with_format and not caps.forced_tool_choice


def test_structured_output_setting_wins_over_the_preset() -> None:
    settings = Settings(server="llama.cpp", structured_output="prompt")

    caps = compatible_capabilities(settings, "chat")

    assert caps.structured_output == "prompt"
    assert caps.prompt_caching  # the rest is the preset's
    assert compatible_capabilities(Settings(server="llama.cpp"), "chat").structured_output == (
        "json_object_schema"
    )


def test_orch_server_is_read_and_checked() -> None:
    assert Settings.from_env({"ORCH_SERVER": "ollama"}).server == "ollama"
    with pytest.raises(ConfigError, match="server"):
        Settings.from_env({"ORCH_SERVER": "tgi"})


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"api_key": "sk-test"}, id="openai"),
        pytest.param({"backend": "local"}, id="local"),
    ],
)
async def test_server_preset_without_a_compatible_backend_is_refused(
    fields: dict[str, object],
) -> None:
    settings = Settings(server="vllm", **fields)  # pyright: ignore[reportArgumentType]

    with pytest.raises(ConfigError, match=r"--server vllm .* also give its --base-url"):
        async with open_backend(settings):
            pass


def test_llama_cpp_preset_is_what_the_conformance_run_recorded_with() -> None:
    """The bench recorded tests/data/server_payloads/llama-server with the preset (plus its own
    smaller cap), so `--server llama.cpp` sends the bodies the real server accepted."""
    for style in STYLES:
        caps = compatible_capabilities(Settings(server="llama.cpp"), style)
        assert replace(caps, default_max_output_tokens=CAP_TOKENS) == bench_capabilities(style)


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("server", PRESETS)
async def test_server_preset_bodies_fit_that_server(server: ServerPreset, style: ApiStyle) -> None:
    caps = await opened(style, server=server)
    kind = PRESET_SERVERS[server]

    for request in variants():
        assert problems(request, caps, kind, style) == [], request


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("server", SERVERS)
async def test_unknown_server_defaults_fit_every_known_server(server: str, style: ApiStyle) -> None:
    caps = await opened(style)

    for request in variants():
        assert problems(request, caps, server, style) == [], request


def problems(
    request: ModelRequest, caps: ModelCapabilities, server: str, style: ApiStyle
) -> list[str]:
    """What `server` would refuse or ignore in the body sent for `request`; the cap is sent."""
    if style == "chat":
        body = chat_body(request, caps)
        assert body["max_tokens"] == caps.default_max_output_tokens == 4096
        return chat_problems(body, server)
    body = responses_body(request, caps, store=False)
    assert body["max_output_tokens"] == 4096
    return responses_problems({**body, **body.pop("extra_body", {})}, server)
