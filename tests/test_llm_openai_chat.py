"""`OpenAIChatClient` through the real `openai` SDK over an in-process HTTP transport."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import anyio
import httpx2
import pytest
from pydantic import BaseModel, Field

from orchestrator.errors import ModelAPIError, ModelBehaviorError
from orchestrator.llm import (
    AssistantMessage,
    ModelCapabilities,
    ModelRequest,
    ReplyDone,
    StreamingModelClient,
    SystemMessage,
    TextDelta,
    ToolCall,
    ToolDefinition,
    ToolResultMessage,
    UserMessage,
)
from orchestrator.llm_openai import strict_json_schema
from orchestrator.llm_openai_chat import CHAT_CAPABILITIES, OpenAIChatClient
from orchestrator.llm_openai_shape import COMPATIBLE_CAPABILITIES, SERVER_CAPABILITIES
from orchestrator.models import TokenUsage
from orchestrator.schema import grammar_json_schema

from .openai_payloads import (
    ScriptedServer,
    chat_chunk,
    chat_completion,
    chat_tool_call,
    chat_usage,
    ok,
    sse,
)

MakeClient = Callable[..., OpenAIChatClient]

LLAMA_CPP = ModelCapabilities(
    structured_output="json_object_schema",
    tool_calls_need_named_choice=True,
    parallel_requests=4,
    prompt_caching=False,
)
PARAMS = {
    "type": "object",
    "properties": {"path": {"type": "string"}},
    "required": ["path"],
    "additionalProperties": False,
}
READ_FILE = ToolDefinition(name="read_file", description="Read a file.", parameters=PARAMS)
LIST_DIR = ToolDefinition(name="list_dir", description="List a folder.", parameters=PARAMS)


class Verdict(BaseModel):
    approved: bool
    reasons: list[str]


SCHEMA = strict_json_schema(Verdict)
VERDICT_JSON = '{"approved": false, "reasons": ["no tests"]}'


def request(*messages: Any, **fields: Any) -> ModelRequest:
    base = (SystemMessage(content="You review diffs."), UserMessage(content="Review it."))
    return ModelRequest(role="reviewer", model="qwen3-8b", messages=messages or base, **fields)


@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    made: list[tuple[OpenAIChatClient, httpx2.AsyncClient]] = []

    def make(server: ScriptedServer, **options: Any) -> OpenAIChatClient:
        http = server.http_client()
        options.setdefault("base_url", "http://127.0.0.1:8080/v1")
        client = OpenAIChatClient(http_client=http, **options)
        made.append((client, http))
        return client

    yield make
    for client, http in made:
        await client.aclose()
        await http.aclose()


async def test_chat_client_is_a_streaming_model_client(make_client: MakeClient) -> None:
    client = make_client(ScriptedServer())
    assert isinstance(client, StreamingModelClient)
    assert client.capabilities == CHAT_CAPABILITIES
    assert client.capabilities.structured_output == "json_schema"


async def test_chat_text_reply(make_client: MakeClient) -> None:
    usage = chat_usage(prompt=2048, completion=90, cached=1536, reasoning=40)
    server = ScriptedServer(ok(chat_completion("Looks good.", usage=usage)))
    reply = await make_client(server).complete(request(temperature=0.0, max_output_tokens=256))

    assert server.body == {
        "model": "qwen3-8b",
        "messages": [
            {"role": "system", "content": "You review diffs."},
            {"role": "user", "content": "Review it."},
        ],
        "temperature": 0.0,
        "max_tokens": 256,
    }
    assert server.requests[0].url == "http://127.0.0.1:8080/v1/chat/completions"
    assert (reply.text, reply.model, reply.finish_reason) == (
        "Looks good.",
        "Qwen/Qwen3-8B",
        "stop",
    )
    assert reply.usage == TokenUsage(
        input_tokens=2048,
        cached_input_tokens=1536,
        output_tokens=90,
        reasoning_tokens=40,
        requests=1,
    )


async def test_chat_usage_without_details_counts_zero(make_client: MakeClient) -> None:
    usage = chat_usage(prompt=10, completion=2, cached=None, reasoning=None)
    server = ScriptedServer(ok(chat_completion("ok", usage=usage)))
    reply = await make_client(server).complete(request())
    assert reply.usage == TokenUsage(input_tokens=10, output_tokens=2, requests=1)


async def test_chat_extra_body_and_prompt_cache_key_are_sent(make_client: MakeClient) -> None:
    server = ScriptedServer(ok(chat_completion("ok")))
    client = make_client(server, extra_body={"chat_template_kwargs": {"enable_thinking": False}})
    await client.complete(request(prompt_cache_key="review-1"))
    assert server.body["chat_template_kwargs"] == {"enable_thinking": False}
    assert server.body["prompt_cache_key"] == "review-1"


async def test_chat_json_schema_style(make_client: MakeClient) -> None:
    server = ScriptedServer(ok(chat_completion(VERDICT_JSON)))
    reply = await make_client(server).complete(request(output_type=Verdict))
    assert server.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Verdict", "schema": SCHEMA, "strict": True},
    }
    assert SCHEMA["additionalProperties"] is False
    assert reply.parsed == Verdict(approved=False, reasons=["no tests"])


async def test_chat_json_object_schema_style_for_llama_cpp(make_client: MakeClient) -> None:
    server = ScriptedServer(ok(chat_completion(VERDICT_JSON)))
    reply = await make_client(server, capabilities=LLAMA_CPP).complete(
        request(output_type=Verdict, prompt_cache_key="dropped")
    )
    body = server.body
    assert body["response_format"] == {"type": "json_object", "schema": SCHEMA}
    assert body["messages"][0] == {"role": "system", "content": "You review diffs."}
    assert "prompt_cache_key" not in body
    assert reply.parsed == Verdict(approved=False, reasons=["no tests"])


async def test_chat_json_object_style_puts_the_schema_in_the_system_prompt(
    make_client: MakeClient,
) -> None:
    server = ScriptedServer(ok(chat_completion(VERDICT_JSON)))
    caps = ModelCapabilities(structured_output="json_object")
    reply = await make_client(server, capabilities=caps).complete(request(output_type=Verdict))
    body = server.body
    assert body["response_format"] == {"type": "json_object"}
    system = body["messages"][0]["content"]
    assert system.startswith("You review diffs.\n\nReply with exactly one JSON object")
    assert json.dumps(SCHEMA) in system
    assert reply.parsed is not None


async def test_chat_prompt_style_extracts_json_from_prose(make_client: MakeClient) -> None:
    text = f"Here is my verdict:\n```json\n{VERDICT_JSON}\n```"
    server = ScriptedServer(ok(chat_completion(text)))
    caps = ModelCapabilities(structured_output="prompt")
    messages = (UserMessage(content="Review it."),)
    reply = await make_client(server, capabilities=caps).complete(
        request(*messages, output_type=Verdict)
    )
    body = server.body
    assert "response_format" not in body
    assert body["messages"][0]["role"] == "system"
    assert json.dumps(SCHEMA) in body["messages"][0]["content"]
    assert body["messages"][1] == {"role": "user", "content": "Review it."}
    assert reply.parsed == Verdict(approved=False, reasons=["no tests"])


async def test_chat_schema_mismatch_raises_behavior_error(make_client: MakeClient) -> None:
    server = ScriptedServer(ok(chat_completion('{"approved": "yes"}')))
    with pytest.raises(ModelBehaviorError, match="Verdict"):
        await make_client(server).complete(request(output_type=Verdict))


async def test_chat_tool_call_round_trip(make_client: MakeClient) -> None:
    call = chat_tool_call("read_file", {"path": "README.md"}, call_id="call_8fZk")
    server = ScriptedServer(
        ok(chat_completion(None, tool_calls=[call], finish_reason="tool_calls")),
        ok(chat_completion("The README is short.")),
    )
    client = make_client(server)
    first = await client.complete(request(tools=(READ_FILE,)))

    assert server.bodies[0]["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "read_file",
                "description": "Read a file.",
                "parameters": PARAMS,
                "strict": True,
            },
        }
    ]
    assert server.bodies[0]["tool_choice"] == "auto"
    assert first.text == ""
    assert first.finish_reason == "tool_calls"
    assert first.tool_calls == (
        ToolCall(call_id="call_8fZk", name="read_file", arguments='{"path": "README.md"}'),
    )

    history = (
        UserMessage(content="Summarise the README."),
        AssistantMessage(tool_calls=first.tool_calls),
        ToolResultMessage(call_id="call_8fZk", name="read_file", content="# orchestrator"),
    )
    await client.complete(request(*history, tools=(READ_FILE,)))
    assert server.bodies[1]["messages"] == [
        {"role": "user", "content": "Summarise the README."},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_8fZk",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path": "README.md"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_8fZk", "content": "# orchestrator"},
    ]


async def test_chat_llama_cpp_names_a_lone_tool(make_client: MakeClient) -> None:
    """The reply has no id, no type and finish_reason "stop", as some local servers answer."""
    call = chat_tool_call("read_file", {"path": "a.py"}, call_id=None)
    server = ScriptedServer(ok(chat_completion(None, tool_calls=[call], model="smollm2")))
    reply = await make_client(server, capabilities=LLAMA_CPP).complete(
        request(tools=(READ_FILE,), tool_choice="required")
    )
    body = server.body
    assert body["tool_choice"] == {"type": "function", "function": {"name": "read_file"}}
    assert "strict" not in body["tools"][0]["function"]
    assert reply.tool_calls == (
        ToolCall(call_id="call_0", name="read_file", arguments='{"path": "a.py"}'),
    )
    assert reply.finish_reason == "tool_calls"


async def test_chat_llama_cpp_passes_choice_through_with_several_tools(
    make_client: MakeClient,
) -> None:
    server = ScriptedServer(ok(chat_completion("I need no tool.")))
    await make_client(server, capabilities=LLAMA_CPP).complete(
        request(tools=(READ_FILE, LIST_DIR), tool_choice="required")
    )
    assert server.body["tool_choice"] == "required"
    assert len(server.body["tools"]) == 2


@pytest.mark.parametrize(
    ("forced", "tools", "choice"),
    [
        (True, ["read_file", "list_dir"], {"type": "function", "function": {"name": "list_dir"}}),
        (False, ["list_dir"], "required"),
    ],
    ids=["forced", "not-forced"],
)
async def test_chat_named_tool_choice(
    make_client: MakeClient, forced: bool, tools: list[str], choice: Any
) -> None:
    server = ScriptedServer(ok(chat_completion("ok")))
    caps = ModelCapabilities(forced_tool_choice=forced)
    await make_client(server, capabilities=caps).complete(
        request(tools=(READ_FILE, LIST_DIR), tool_choice="list_dir")
    )
    assert [tool["function"]["name"] for tool in server.body["tools"]] == tools
    assert server.body["tool_choice"] == choice


async def test_chat_native_tools_are_a_programming_error(make_client: MakeClient) -> None:
    server = ScriptedServer()
    patch = ToolDefinition(name="apply_patch", description="Edit.", kind="apply_patch")
    with pytest.raises(ValueError, match="native apply_patch tool"):
        await make_client(server).complete(request(tools=(patch,)))
    assert server.requests == []


async def test_chat_stream_assembles_text_and_tool_calls(make_client: MakeClient) -> None:
    chunks = [
        chat_chunk({"role": "assistant", "content": ""}),
        chat_chunk({"content": "Let me "}),
        chat_chunk({"content": "look."}),
        chat_chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_s1",
                        "type": "function",
                        "function": {"name": "read_file", "arguments": ""},
                    }
                ]
            }
        ),
        chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"path": '}}]}),
        chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"b.py"}'}}]}),
        chat_chunk({}, finish_reason="tool_calls"),
        chat_chunk(None, usage=chat_usage(prompt=300, completion=20, cached=256, reasoning=0)),
    ]
    server = ScriptedServer(sse(chunks, named=False, done=True))
    events = [event async for event in make_client(server).stream(request(tools=(READ_FILE,)))]

    assert events[:2] == [TextDelta(text="Let me "), TextDelta(text="look.")]
    [done] = events[2:]
    assert isinstance(done, ReplyDone)
    reply = done.reply
    assert reply.text == "Let me look."
    assert reply.tool_calls == (
        ToolCall(call_id="call_s1", name="read_file", arguments='{"path": "b.py"}'),
    )
    assert reply.finish_reason == "tool_calls"
    assert (reply.usage.input_tokens, reply.usage.cached_input_tokens) == (300, 256)
    assert server.body["stream"] is True
    assert server.body["stream_options"] == {"include_usage": True}


async def test_chat_stream_error_chunk_is_retryable(make_client: MakeClient) -> None:
    chunks = [
        chat_chunk({"role": "assistant", "content": "Par"}),
        {"error": {"message": "CUDA out of memory", "type": "server_error", "code": 500}},
    ]
    client = make_client(ScriptedServer(sse(chunks, named=False)))
    with pytest.raises(ModelAPIError, match="CUDA out of memory") as caught:
        _ = [event async for event in client.stream(request())]
    assert (caught.value.status_code, caught.value.retryable) == (None, True)


async def test_chat_stream_parses_structured_output(make_client: MakeClient) -> None:
    chunks = [
        chat_chunk({"role": "assistant", "content": VERDICT_JSON[:10]}),
        chat_chunk({"content": VERDICT_JSON[10:]}, finish_reason="stop"),
        chat_chunk(None, usage=chat_usage()),
    ]
    server = ScriptedServer(sse(chunks, named=False, done=True))
    client = make_client(server, capabilities=LLAMA_CPP)
    events = [event async for event in client.stream(request(output_type=Verdict))]
    done = events[-1]
    assert isinstance(done, ReplyDone)
    assert done.reply.parsed == Verdict(approved=False, reasons=["no tests"])


async def test_chat_concurrent_calls_are_all_answered(make_client: MakeClient) -> None:
    def answer(sent: httpx2.Request) -> httpx2.Response:
        asked = json.loads(sent.content)["messages"][-1]["content"]
        return ok(chat_completion(f"answer to {asked}"))

    server = ScriptedServer(answer)
    client = make_client(server)
    replies: dict[int, str] = {}

    async def ask(n: int) -> None:
        reply = await client.complete(request(UserMessage(content=f"q{n}")))
        replies[n] = reply.text

    async with anyio.create_task_group() as tg:
        for n in range(20):
            tg.start_soon(ask, n)
    assert replies == {n: f"answer to q{n}" for n in range(20)}
    assert len(server.requests) == 20


# Compatible servers: tools vs format, named choice as a string, grammar schemas, output caps --


class Report(BaseModel):
    status: str
    summary: str = Field(max_length=40)
    files: list[str] = Field(max_length=3)


LLAMA_SERVER = replace(SERVER_CAPABILITIES["llama-server"], structured_output="json_object_schema")
REPORT_JSON = '{"status": "done", "summary": "Read it.", "files": ["a.py"]}'


async def test_chat_tools_and_format_never_share_a_request(make_client: MakeClient) -> None:
    """The format's grammar would forbid tool calls: the schema moves to the prompt instead."""
    server = ScriptedServer(ok(chat_completion(f"Done.\n```json\n{REPORT_JSON}\n```")))
    reply = await make_client(server, capabilities=LLAMA_SERVER).complete(
        request(tools=(READ_FILE,), output_type=Report)
    )
    body = server.body
    assert "response_format" not in body
    assert body["tool_choice"] == "auto"
    system = body["messages"][0]["content"]
    assert system.startswith("You review diffs.\n\nReply with exactly one JSON object")
    assert json.dumps(grammar_json_schema(Report)) in system
    assert reply.parsed == Report(status="done", summary="Read it.", files=["a.py"])


async def test_chat_tools_and_format_share_a_request_where_allowed(
    make_client: MakeClient,
) -> None:
    server = ScriptedServer(ok(chat_completion(VERDICT_JSON)))
    await make_client(server).complete(request(tools=(READ_FILE,), output_type=Verdict))
    assert server.body["response_format"]["type"] == "json_schema"
    assert server.body["messages"][0] == {"role": "system", "content": "You review diffs."}


async def test_chat_format_stays_when_tool_choice_is_none(make_client: MakeClient) -> None:
    server = ScriptedServer(ok(chat_completion(REPORT_JSON)))
    await make_client(server, capabilities=LLAMA_SERVER).complete(
        request(tools=(READ_FILE,), tool_choice="none", output_type=Report)
    )
    assert server.body["response_format"] == {
        "type": "json_object",
        "schema": grammar_json_schema(Report),
    }


@pytest.mark.parametrize(
    ("strict", "max_length"),
    [(True, None), (False, 40)],
    ids=["openai-strict-drops-it", "grammar-keeps-it"],
)
async def test_chat_schema_keeps_constraints_only_for_grammar_servers(
    make_client: MakeClient, strict: bool, max_length: int | None
) -> None:
    server = ScriptedServer(ok(chat_completion(REPORT_JSON)))
    caps = ModelCapabilities(strict_schema=strict)
    await make_client(server, capabilities=caps).complete(request(output_type=Report))
    json_schema = server.body["response_format"]["json_schema"]
    summary = json_schema["schema"]["properties"]["summary"]
    assert summary.get("maxLength") == max_length
    assert json_schema.get("strict") is (True if strict else None)


async def test_chat_grammar_json_schema_sends_no_strict_flags(make_client: MakeClient) -> None:
    server = ScriptedServer(ok(chat_completion(REPORT_JSON)))
    caps = SERVER_CAPABILITIES["vllm"]
    await make_client(server, capabilities=caps).complete(
        request(tools=(READ_FILE,), tool_choice="none", output_type=Report)
    )
    body = server.body
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Report", "schema": grammar_json_schema(Report)},
    }
    assert "strict" not in body["tools"][0]["function"]


@pytest.mark.parametrize(
    ("choice", "tools", "sent"),
    [
        ("list_dir", ["list_dir"], "required"),
        ("auto", ["read_file", "list_dir"], "auto"),
        ("required", ["read_file", "list_dir"], "required"),
    ],
    ids=["named", "auto", "required"],
)
async def test_chat_tool_choice_is_a_string_where_objects_are_unsupported(
    make_client: MakeClient, choice: str, tools: list[str], sent: str
) -> None:
    server = ScriptedServer(ok(chat_completion("ok")))
    await make_client(server, capabilities=LLAMA_SERVER).complete(
        request(tools=(READ_FILE, LIST_DIR), tool_choice=choice)
    )
    assert [tool["function"]["name"] for tool in server.body["tools"]] == tools
    assert server.body["tool_choice"] == sent


async def test_chat_lone_tool_named_by_string_when_objects_are_unsupported(
    make_client: MakeClient,
) -> None:
    server = ScriptedServer(ok(chat_completion("ok")))
    caps = replace(LLAMA_SERVER, tool_calls_need_named_choice=True)
    await make_client(server, capabilities=caps).complete(request(tools=(READ_FILE,)))
    assert server.body["tool_choice"] == "required"


@pytest.mark.parametrize(
    ("asked", "sent"), [(None, 4096), (300, 300)], ids=["server-default", "request"]
)
async def test_chat_output_cap_defaults_for_compatible_servers(
    make_client: MakeClient, asked: int | None, sent: int
) -> None:
    server = ScriptedServer(ok(chat_completion("ok")))
    await make_client(server, capabilities=COMPATIBLE_CAPABILITIES).complete(
        request(max_output_tokens=asked, temperature=0.0)
    )
    assert (server.body["max_tokens"], server.body["temperature"]) == (sent, 0.0)


async def test_chat_openai_sends_no_output_cap_by_default(make_client: MakeClient) -> None:
    server = ScriptedServer(ok(chat_completion("ok")))
    await make_client(server).complete(request())
    assert "max_tokens" not in server.body
