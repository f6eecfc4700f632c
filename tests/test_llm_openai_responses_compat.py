"""`OpenAIResponsesClient` against other servers' /v1/responses (llama.cpp, vLLM, Ollama):
typed replays, `text.format` only where honoured, named tool choice as a string, output caps."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import httpx2
import pytest
from pydantic import BaseModel, Field

from orchestrator.llm import (
    AssistantMessage,
    ModelCapabilities,
    ModelRequest,
    StructuredOutputStyle,
    SystemMessage,
    ToolDefinition,
    UserMessage,
)
from orchestrator.llm_openai_responses import RESPONSES_CAPABILITIES, OpenAIResponsesClient
from orchestrator.llm_openai_shape import SERVER_CAPABILITIES
from orchestrator.schema import grammar_json_schema

from .openai_payloads import ScriptedServer, message_item, ok, response

MakeClient = Callable[..., OpenAIResponsesClient]

PARAMS = {
    "type": "object",
    "properties": {"path": {"type": "string"}},
    "required": ["path"],
    "additionalProperties": False,
}
READ_FILE = ToolDefinition(name="read_file", description="Read a file.", parameters=PARAMS)
LIST_DIR = ToolDefinition(name="list_dir", description="List a folder.", parameters=PARAMS)
SHELL = ToolDefinition(name="shell", description="Run commands.", kind="shell")


def request(*messages: Any, **fields: Any) -> ModelRequest:
    base = (SystemMessage(content="You are a careful worker."), UserMessage(content="Go."))
    return ModelRequest(role="worker", model="qwen3-8b", messages=messages or base, **fields)


@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    made: list[tuple[OpenAIResponsesClient, httpx2.AsyncClient]] = []

    def make(server: ScriptedServer, **options: Any) -> OpenAIResponsesClient:
        http = server.http_client()
        options.setdefault("base_url", "http://127.0.0.1:8080/v1")
        client = OpenAIResponsesClient(http_client=http, **options)
        made.append((client, http))
        return client

    yield make
    for client, http in made:
        await client.aclose()
        await http.aclose()


LLAMA_SERVER = replace(SERVER_CAPABILITIES["llama-server"], responses_api=True)


class Report(BaseModel):
    status: str
    summary: str = Field(max_length=40)


REPORT_JSON = '{"status": "done", "summary": "It defines main()."}'


async def test_responses_replayed_assistant_text_is_a_typed_message(
    make_client: MakeClient,
) -> None:
    """llama.cpp answers 400 "Cannot determine type of 'item'" to an untyped assistant item."""
    server = ScriptedServer(ok(response([message_item("ok")])))
    history = (
        UserMessage(content="Go."),
        AssistantMessage(content="I looked at it."),
        UserMessage(content="And?"),
    )
    await make_client(server).complete(request(*history))
    assert server.body["input"] == [
        {"role": "user", "content": "Go."},
        {"type": "message", "role": "assistant", "content": "I looked at it."},
        {"role": "user", "content": "And?"},
    ]


@pytest.mark.parametrize("style", ["json_schema", "json_object", "prompt"])
async def test_responses_schema_goes_in_the_instructions_without_text_format(
    make_client: MakeClient, style: StructuredOutputStyle
) -> None:
    server = ScriptedServer(ok(response([message_item(f"Sure:\n```json\n{REPORT_JSON}\n```")])))
    caps = replace(LLAMA_SERVER, structured_output=style)
    reply = await make_client(server, capabilities=caps).complete(request(output_type=Report))
    body = server.body
    assert "text" not in body
    assert "extra_body" not in body
    assert body["instructions"].startswith("You are a careful worker.\n\nReply with exactly one")
    assert json.dumps(grammar_json_schema(Report)) in body["instructions"]
    assert reply.parsed == Report(status="done", summary="It defines main().")


async def test_responses_json_object_format_where_text_format_is_honoured(
    make_client: MakeClient,
) -> None:
    server = ScriptedServer(ok(response([message_item(REPORT_JSON)])))
    caps = replace(
        SERVER_CAPABILITIES["ollama"], responses_api=True, structured_output="json_object"
    )
    await make_client(server, capabilities=caps).complete(request(output_type=Report))
    assert server.body["text"] == {"format": {"type": "json_object"}}
    assert "Reply with exactly one JSON object" in server.body["instructions"]


async def test_responses_json_object_schema_is_llama_cpps_response_format(
    make_client: MakeClient,
) -> None:
    server = ScriptedServer(ok(response([message_item(REPORT_JSON)])))
    reply = await make_client(server, capabilities=LLAMA_SERVER).complete(
        request(output_type=Report)
    )
    body = server.body
    assert body["response_format"] == {"type": "json_object", "schema": grammar_json_schema(Report)}
    assert body["response_format"]["schema"]["properties"]["summary"]["maxLength"] == 40
    assert "text" not in body
    assert body["instructions"] == "You are a careful worker."
    assert reply.parsed == Report(status="done", summary="It defines main().")


async def test_responses_non_strict_json_schema_where_text_format_is_honoured(
    make_client: MakeClient,
) -> None:
    server = ScriptedServer(ok(response([message_item(REPORT_JSON)])))
    caps = replace(SERVER_CAPABILITIES["vllm"], responses_api=True)
    await make_client(server, capabilities=caps).complete(request(output_type=Report))
    assert server.body["text"] == {
        "format": {"type": "json_schema", "name": "Report", "schema": grammar_json_schema(Report)}
    }


async def test_responses_tools_and_format_never_share_a_request(make_client: MakeClient) -> None:
    server = ScriptedServer(ok(response([message_item(REPORT_JSON)])))
    caps = replace(SERVER_CAPABILITIES["vllm"], responses_api=True)
    await make_client(server, capabilities=caps).complete(
        request(tools=(READ_FILE,), output_type=Report)
    )
    body = server.body
    assert "text" not in body
    assert json.dumps(grammar_json_schema(Report)) in body["instructions"]
    assert body["tools"][0]["strict"] is False


@pytest.mark.parametrize(
    ("caps", "tools", "choice"),
    [
        (LLAMA_SERVER, ["list_dir"], "required"),
        (
            RESPONSES_CAPABILITIES,
            ["read_file", "list_dir"],
            {"type": "function", "name": "list_dir"},
        ),
    ],
    ids=["string-only", "object"],
)
async def test_responses_named_tool_choice(
    make_client: MakeClient, caps: ModelCapabilities, tools: list[str], choice: Any
) -> None:
    server = ScriptedServer(ok(response([message_item("ok")])))
    await make_client(server, capabilities=caps).complete(
        request(tools=(READ_FILE, LIST_DIR), tool_choice="list_dir")
    )
    assert [tool["name"] for tool in server.body["tools"]] == tools
    assert server.body["tool_choice"] == choice


async def test_responses_named_native_tool_choice(make_client: MakeClient) -> None:
    server = ScriptedServer(ok(response([message_item("ok")])))
    await make_client(server).complete(request(tools=(READ_FILE, SHELL), tool_choice="shell"))
    assert server.body["tool_choice"] == {"type": "shell"}


async def test_responses_output_cap_defaults_for_compatible_servers(
    make_client: MakeClient,
) -> None:
    server = ScriptedServer(ok(response([message_item("ok")])), ok(response([message_item("ok")])))
    client = make_client(server, capabilities=LLAMA_SERVER)
    await client.complete(request())
    await client.complete(request(max_output_tokens=64))
    assert [body["max_output_tokens"] for body in server.bodies] == [4096, 64]


async def test_responses_extra_body_merges_with_the_llama_cpp_format(
    make_client: MakeClient,
) -> None:
    server = ScriptedServer(ok(response([message_item(REPORT_JSON)])))
    client = make_client(
        server, capabilities=LLAMA_SERVER, extra_body={"parallel_tool_calls": False}
    )
    await client.complete(request(output_type=Report))
    body = server.body
    assert body["parallel_tool_calls"] is False
    assert body["response_format"]["type"] == "json_object"
