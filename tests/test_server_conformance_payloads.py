"""What the request builders send to llama-server, vLLM and Ollama under their presets, and whether
those servers' replies parse.

llama-server: exchanges recorded from the real server by `python -m
bench.llama_server_conformance --record`. Each request is rebuilt from the `ModelRequest` the bench
sent and must equal the body the server accepted; each reply must parse as the bench saw it.

vLLM and Ollama: payloads written from their documentation and sources (each file's `source`).
Requests are checked against the rules of those servers' request models; replies must parse.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import httpx2
import pytest
from pydantic import BaseModel

from bench.llama_server_cases import (
    MAX_CHARS,
    Brief,
    brief_request,
    recorded_cases,
    replay_request,
    tool_request,
)
from orchestrator.errors import ModelAPIError, ModelBehaviorError, ModelError
from orchestrator.llm import (
    AssistantMessage,
    ModelCapabilities,
    ModelReply,
    ModelRequest,
    StructuredOutputStyle,
    SystemMessage,
    ToolCall,
    ToolDefinition,
    ToolResultMessage,
    UserMessage,
)
from orchestrator.llm_openai_chat import OpenAIChatClient, chat_body
from orchestrator.llm_openai_responses import OpenAIResponsesClient, responses_body
from orchestrator.llm_openai_shape import SERVER_CAPABILITIES, ServerKind

from .openai_payloads import ScriptedServer

DATA = Path(__file__).parent / "data" / "server_payloads"
LLAMA = DATA / "llama-server"


def load(path: Path) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(path.read_text()))


async def through_client(
    payload: dict[str, Any], request: ModelRequest, caps: ModelCapabilities
) -> tuple[ModelReply | ModelError, dict[str, Any]]:
    """Send `request` through the real client to a server that answers with the payload's
    response; returns the parsed reply (or the model error it raised) and the body it sent."""
    server = ScriptedServer(httpx2.Response(payload["status"], json=payload["response"]))
    async with server.http_client() as http:
        options: dict[str, Any] = {"base_url": "http://127.0.0.1:8080/v1", "http_client": http}
        if caps.responses_api:
            client: OpenAIChatClient | OpenAIResponsesClient = OpenAIResponsesClient(
                capabilities=caps, **options
            )
        else:
            client = OpenAIChatClient(capabilities=caps, **options)
        try:
            reply: ModelReply | ModelError = await client.complete(request)
        except ModelError as exc:
            reply = exc
    return reply, server.body


# llama-server, recorded ------------------------------------------------------------------------

RECORDED = {case.name: case for case in recorded_cases()}


def test_llama_server_recordings_are_complete() -> None:
    names = {path.stem for path in LLAMA.glob("*.json")}
    assert names == {*RECORDED, "responses_replay_untyped"}


async def recorded(name: str) -> tuple[ModelReply | ModelError, dict[str, Any]]:
    """The recorded exchange replayed through the client; asserts the body is the one the real
    server accepted."""
    case, payload = RECORDED[name], load(LLAMA / f"{name}.json")
    assert payload["status"] == 200, payload["response"]
    reply, body = await through_client(payload, case.request, case.caps)
    assert body == payload["request"]
    return reply, body


async def answered(name: str) -> tuple[ModelReply, dict[str, Any]]:
    """`recorded`, for a reply the client parses."""
    reply, body = await recorded(name)
    assert isinstance(reply, ModelReply), reply
    return reply, body


@pytest.mark.parametrize("name", sorted(RECORDED))
async def test_llama_server_accepted_the_exact_body_we_build(name: str) -> None:
    await recorded(name)


@pytest.mark.parametrize(
    "name",
    [
        "chat_brief_json_schema",
        "chat_brief_json_object_schema",
        "responses_brief_json_object_schema",
    ],
)
async def test_llama_server_enforces_the_grammar_schema_with_max_length(name: str) -> None:
    reply, body = await answered(name)
    assert f'"maxLength": {MAX_CHARS}' in json.dumps(body)
    assert isinstance(reply.parsed, Brief)  # pydantic checked every maxLength


@pytest.mark.parametrize("style", ["chat", "responses"])
async def test_llama_server_named_choice_as_a_string_forces_the_tool(style: str) -> None:
    reply, body = await answered(f"{style}_named_choice")
    assert body["tool_choice"] == "required"
    assert len(body["tools"]) == 1
    assert reply.tool_calls
    assert {call.name for call in reply.tool_calls} == {"list_dir"}


@pytest.mark.parametrize("style", ["chat", "responses"])
async def test_llama_server_tools_with_an_output_type_still_call_the_tool(style: str) -> None:
    reply, body = await answered(f"{style}_tools_and_format")
    assert "response_format" not in body and "text" not in body
    assert reply.tool_calls


async def test_llama_server_accepts_typed_assistant_replays_only() -> None:
    reply, body = await answered("responses_replay")
    assert {"type": "message", "role": "assistant", "content": "I will read it."} in body["input"]
    assert reply.text
    untyped = load(LLAMA / "responses_replay_untyped.json")
    case = RECORDED["responses_replay"]
    error, _ = await through_client(untyped, case.request, case.caps)
    assert isinstance(error, ModelAPIError)
    assert "Cannot determine type of 'item'" in str(error)
    assert (error.status_code, error.retryable) == (400, False)


@pytest.mark.parametrize(
    ("style", "finish"),
    # llama-server's /v1/responses says "completed" for a capped reply; only chat says "length".
    [("chat", "length"), ("responses", "stop")],
)
async def test_llama_server_stops_at_the_default_output_cap(style: str, finish: str) -> None:
    reply, body = await answered(f"{style}_output_cap")
    assert body.get("max_tokens", body.get("max_output_tokens")) == 16
    assert reply.finish_reason == finish
    assert reply.usage.output_tokens == 16


@pytest.mark.parametrize(
    "name", ["chat_brief_json_object", "chat_brief_prompt", "responses_brief_prompt"]
)
async def test_llama_server_unenforced_schemas_are_prompted_and_parsed_leniently(
    name: str,
) -> None:
    """Without a grammar the 135M model misses the schema: the client says so, quoting it."""
    reply, body = await recorded(name)
    assert "Reply with exactly one JSON object" in json.dumps(body)
    assert isinstance(reply, ModelBehaviorError)
    assert "reply does not fit Brief" in str(reply)


# vLLM and Ollama, from their docs and sources ----------------------------------------------------

READ_FILE = ToolDefinition(
    name="read_file",
    description="Read a file.",
    parameters={
        "type": "object",
        "properties": {"path": {"type": "string"}},
        "required": ["path"],
        "additionalProperties": False,
    },
)
LIST_DIR = replace(READ_FILE, name="list_dir", description="List a folder.")


def history() -> ModelRequest:
    """Every message kind: system, user, assistant text, a tool round."""
    call = ToolCall(call_id="call_1", name="read_file", arguments='{"path": "a.py"}')
    return ModelRequest(
        role="worker",
        model="m",
        messages=(
            SystemMessage(content="Work."),
            UserMessage(content="Go."),
            AssistantMessage(content="Looking.", tool_calls=(call,)),
            ToolResultMessage(call_id="call_1", name="read_file", content="x = 1"),
            AssistantMessage(content="Done looking."),
            UserMessage(content="Report."),
        ),
        tools=(READ_FILE, LIST_DIR),
    )


def variants() -> list[ModelRequest]:
    """Requests the engine sends: tool turns, a named choice, reports, with and without tools."""
    base = history()
    return [
        base,
        replace(base, tool_choice="list_dir"),
        replace(base, tool_choice="required"),
        replace(base, output_type=Brief),
        replace(base, tools=(), output_type=Brief),
        brief_request(),
        tool_request("list_dir"),
        replay_request(),
    ]


def chat_problems(body: dict[str, Any], server: str) -> list[str]:
    """Why `server`'s chat endpoint would reject `body` or silently ignore part of it."""
    problems: list[str] = []
    tools = [tool["function"]["name"] for tool in body.get("tools", [])]
    choice = body.get("tool_choice")
    if "tools" in body and not tools:
        problems.append("empty tools")  # vLLM: 400
    if isinstance(choice, dict):
        if server != "vllm":
            problems.append("named tool_choice object")  # llama.cpp: read as auto; Ollama: none
        elif cast(dict[str, Any], choice).get("function", {}).get("name") not in tools:
            problems.append("tool_choice names no tool")  # vLLM: 400
    fmt = cast(dict[str, Any], body.get("response_format") or {})
    if fmt and tools and choice != "none":
        problems.append("tools and a format together")  # the format's grammar wins
    if fmt.get("type") == "json_schema" and "schema" not in fmt.get("json_schema", {}):
        problems.append("json_schema without schema")  # vLLM: 400; Ollama: unconstrained
    if fmt.get("type") == "json_object" and server == "ollama":
        problems.append("json_object has no schema on Ollama")
    for message in body["messages"]:
        if message["role"] == "tool" and "tool_call_id" not in message:
            problems.append("tool message without tool_call_id")
    return problems


def responses_problems(body: dict[str, Any], server: str) -> list[str]:
    """Why `server`'s /v1/responses would reject `body` or silently ignore part of it."""
    problems: list[str] = []
    for item in body["input"]:
        if "type" not in item and item.get("role") == "assistant" and server == "llama-server":
            problems.append("untyped assistant item")  # 400 Cannot determine type of 'item'
        if "type" not in item and "role" not in item:
            problems.append("item with neither type nor role")  # Ollama: 400
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and server != "vllm":
        problems.append("named tool_choice object")
    fmt = cast(dict[str, Any], body.get("text", {}).get("format", {}))
    if fmt and server == "llama-server":
        problems.append("text.format is dropped")
    if fmt.get("type") == "json_object" and server == "ollama":
        problems.append("text.format json_object is ignored")
    if fmt.get("type") == "json_schema" and not {"name", "schema"} <= fmt.keys():
        problems.append("json_schema without name or schema")
    if (fmt or "response_format" in body) and body.get("tools") and choice != "none":
        problems.append("tools and a format together")
    return problems


SERVERS: tuple[ServerKind, ...] = ("llama-server", "vllm", "ollama")
STYLES_BY_SERVER: dict[ServerKind, tuple[StructuredOutputStyle, ...]] = {
    "llama-server": ("json_object_schema", "json_schema", "json_object", "prompt"),
    "vllm": ("json_schema", "json_object", "prompt"),
    "ollama": ("json_schema", "prompt"),
}


def preset(
    server: ServerKind, mode: StructuredOutputStyle, *, responses: bool
) -> ModelCapabilities:
    return replace(SERVER_CAPABILITIES[server], structured_output=mode, responses_api=responses)


@pytest.mark.parametrize("server", SERVERS)
def test_chat_bodies_fit_each_server_under_its_preset(server: ServerKind) -> None:
    for mode in STYLES_BY_SERVER[server]:
        caps = preset(server, mode, responses=False)
        for request in variants():
            body = chat_body(request, caps)
            assert chat_problems(body, server) == [], (mode, request.tool_choice, body)


@pytest.mark.parametrize("server", SERVERS)
def test_responses_bodies_fit_each_server_under_its_preset(server: ServerKind) -> None:
    for mode in STYLES_BY_SERVER[server]:
        caps = preset(server, mode, responses=True)
        for request in variants():
            body = responses_body(request, caps, store=False)
            body = {**body, **body.pop("extra_body", {})}
            assert responses_problems(body, server) == [], (mode, request.tool_choice, body)


def test_openai_defaults_would_not_fit_the_compatible_servers() -> None:
    """The checks bite: OpenAI's capabilities send what these servers refuse or ignore."""
    request = replace(history(), tool_choice="list_dir", output_type=Brief)
    body = chat_body(request, ModelCapabilities())
    assert chat_problems(body, "llama-server") == [
        "named tool_choice object",
        "tools and a format together",
    ]
    responses = responses_body(request, ModelCapabilities(responses_api=True), store=False)
    assert "text.format is dropped" in responses_problems(responses, "llama-server")


DOCUMENTED = sorted(
    path.relative_to(DATA).as_posix()
    for server in ("vllm", "ollama")
    for path in (DATA / server).glob("*.json")
)


@pytest.mark.parametrize("name", DOCUMENTED)
def test_documented_requests_pass_the_checks(name: str) -> None:
    """The rules accept what the servers' own docs send."""
    payload = load(DATA / name)
    check = responses_problems if "responses" in name else chat_problems
    assert check(payload["request"], payload["server"]) == []


async def documented_reply(name: str, request: ModelRequest) -> ModelReply:
    payload = load(DATA / name)
    server = cast(ServerKind, payload["server"])
    caps = replace(SERVER_CAPABILITIES[server], responses_api="responses" in name)
    reply, _ = await through_client(payload, request, caps)
    assert isinstance(reply, ModelReply), reply
    return reply


def plain(output_type: type[BaseModel] | None = None) -> ModelRequest:
    return ModelRequest(
        role="worker", model="m", messages=(UserMessage(content="Go."),), output_type=output_type
    )


@pytest.mark.parametrize(
    ("name", "call"),
    [
        (
            "vllm/chat_tool_call.json",
            ("chatcmpl-tool-9e8f7a6b5c4d4e3fa2b1c0d9e8f7a6b5", "get_weather"),
        ),
        (
            "vllm/responses_function_call.json",
            ("call_1d2c3b4a59684f7e8d9c0b1a2f3e4d5c", "read_file"),
        ),
        ("ollama/chat_tool_call.json", ("call_k2m8x1qz", "get_current_weather")),
        ("ollama/responses_function_call.json", ("call_v8s1k0qe", "list_dir")),
    ],
)
async def test_documented_tool_calls_parse(name: str, call: tuple[str, str]) -> None:
    reply = await documented_reply(name, plain())
    assert [(c.call_id, c.name) for c in reply.tool_calls] == [call]
    assert json.loads(reply.tool_calls[0].arguments)
    assert reply.finish_reason == "tool_calls"


class Car(BaseModel):
    brand: str
    model: str
    car_type: str


class Country(BaseModel):
    name: str
    capital: str = ""
    languages: list[str] = []


@pytest.mark.parametrize(
    ("name", "output_type", "field", "value"),
    [
        ("vllm/chat_json_schema.json", Car, "brand", "Toyota"),
        ("ollama/chat_json_schema.json", Country, "capital", "Ottawa"),
        ("ollama/responses_message.json", Country, "name", "Canada"),
    ],
)
async def test_documented_structured_replies_parse(
    name: str, output_type: type[BaseModel], field: str, value: str
) -> None:
    reply = await documented_reply(name, plain(output_type))
    assert getattr(reply.parsed, field) == value
    assert reply.usage.input_tokens > 0
