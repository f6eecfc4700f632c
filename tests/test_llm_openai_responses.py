"""`OpenAIResponsesClient` through the real `openai` SDK over an in-process HTTP transport."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx2
import pytest
from pydantic import BaseModel

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
from orchestrator.llm_openai_responses import RESPONSES_CAPABILITIES, OpenAIResponsesClient
from orchestrator.models import TokenUsage

from .openai_payloads import (
    MODEL,
    ScriptedServer,
    apply_patch_call_item,
    function_call_item,
    message_item,
    ok,
    reasoning_item,
    response,
    response_text_stream,
    responses_usage,
    shell_call_item,
    sse,
)

MakeClient = Callable[..., OpenAIResponsesClient]

READ_FILE = ToolDefinition(
    name="read_file",
    description="Read a file of the workspace.",
    parameters={
        "type": "object",
        "properties": {"path": {"type": "string"}},
        "required": ["path"],
        "additionalProperties": False,
    },
)
APPLY_PATCH = ToolDefinition(name="apply_patch", description="Edit files.", kind="apply_patch")
SHELL = ToolDefinition(name="shell", description="Run commands.", kind="shell")


class Verdict(BaseModel):
    approved: bool
    reasons: list[str]
    severity: int | None = None


def request(*messages: Any, **fields: Any) -> ModelRequest:
    base = (SystemMessage(content="You are a careful worker."), UserMessage(content="Go."))
    return ModelRequest(role="worker", model="gpt-5.4-mini", messages=messages or base, **fields)


@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    made: list[tuple[OpenAIResponsesClient, httpx2.AsyncClient]] = []

    def make(server: ScriptedServer, **options: Any) -> OpenAIResponsesClient:
        http = server.http_client()
        client = OpenAIResponsesClient(api_key="sk-test", http_client=http, **options)
        made.append((client, http))
        return client

    yield make
    for client, http in made:
        await client.aclose()
        await http.aclose()


async def test_responses_client_is_a_streaming_model_client(make_client: MakeClient) -> None:
    client = make_client(ScriptedServer())
    assert isinstance(client, StreamingModelClient)
    assert client.capabilities == RESPONSES_CAPABILITIES
    assert client.capabilities.native_tools == {"apply_patch", "shell"}


async def test_responses_text_reply_sends_a_stateless_body(make_client: MakeClient) -> None:
    server = ScriptedServer(ok(response([reasoning_item(), message_item("Done: 3 files.")])))
    reply = await make_client(server).complete(request())

    assert server.body == {
        "model": "gpt-5.4-mini",
        "instructions": "You are a careful worker.",
        "input": [{"role": "user", "content": "Go."}],
        "store": False,
    }
    [sent] = server.requests
    assert sent.url == "https://api.openai.com/v1/responses"
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert reply.text == "Done: 3 files."
    assert reply.model == MODEL
    assert reply.finish_reason == "stop"
    assert reply.tool_calls == ()
    assert reply.parsed is None


async def test_responses_optional_fields_are_sent_when_set(make_client: MakeClient) -> None:
    server = ScriptedServer(ok(response([message_item("ok")])))
    client = make_client(server, store=True)
    await client.complete(
        request(temperature=0.2, max_output_tokens=900, prompt_cache_key="plan-7f3a")
    )
    body = server.body
    assert body["temperature"] == 0.2
    assert body["max_output_tokens"] == 900
    assert body["prompt_cache_key"] == "plan-7f3a"
    assert body["store"] is True


async def test_responses_prompt_cache_key_dropped_without_prompt_caching(
    make_client: MakeClient,
) -> None:
    server = ScriptedServer(ok(response([message_item("ok")])))
    caps = ModelCapabilities(responses_api=True, prompt_caching=False)
    await make_client(server, capabilities=caps).complete(request(prompt_cache_key="k"))
    assert "prompt_cache_key" not in server.body


async def test_responses_structured_output_is_parsed(make_client: MakeClient) -> None:
    text = '{"approved": true, "reasons": ["tests pass"], "severity": null}'
    server = ScriptedServer(ok(response([message_item(text)])))
    reply = await make_client(server).complete(request(output_type=Verdict))

    assert server.body["text"] == {
        "format": {
            "type": "json_schema",
            "name": "Verdict",
            "strict": True,
            "schema": {
                "type": "object",
                "title": "Verdict",
                "properties": {
                    "approved": {"type": "boolean", "title": "Approved"},
                    "reasons": {"type": "array", "items": {"type": "string"}, "title": "Reasons"},
                    "severity": {
                        "anyOf": [{"type": "integer"}, {"type": "null"}],
                        "title": "Severity",
                    },
                },
                "required": ["approved", "reasons", "severity"],
                "additionalProperties": False,
            },
        }
    }
    assert reply.parsed == Verdict(approved=True, reasons=["tests pass"])
    assert reply.text == text


async def test_responses_schema_mismatch_raises_behavior_error(make_client: MakeClient) -> None:
    server = ScriptedServer(ok(response([message_item('{"approved": "maybe"}')])))
    with pytest.raises(ModelBehaviorError, match=r"Verdict.*'\{\"approved\": \"maybe\"\}'"):
        await make_client(server).complete(request(output_type=Verdict))
    assert len(server.requests) == 1


async def test_responses_function_call_round_trip(make_client: MakeClient) -> None:
    call = function_call_item("read_file", {"path": "src/app.py"}, call_id="call_Qm3x")
    server = ScriptedServer(
        ok(response([reasoning_item(), call])),
        ok(response([message_item("It defines main().")])),
    )
    client = make_client(server)
    first = await client.complete(request(tools=(READ_FILE,), tool_choice="required"))

    assert server.bodies[0]["tools"] == [
        {
            "type": "function",
            "name": "read_file",
            "description": "Read a file of the workspace.",
            "parameters": dict(READ_FILE.parameters),
            "strict": True,
        }
    ]
    assert server.bodies[0]["tool_choice"] == "required"
    assert first.finish_reason == "tool_calls"
    assert first.tool_calls == (
        ToolCall(
            call_id="call_Qm3x",
            name="read_file",
            arguments='{"path": "src/app.py"}',
            item_id=call["id"],
        ),
    )

    history = (
        SystemMessage(content="You are a careful worker."),
        UserMessage(content="What is in src/app.py?"),
        AssistantMessage(content="", tool_calls=first.tool_calls),
        ToolResultMessage(call_id="call_Qm3x", name="read_file", content="def main(): ..."),
    )
    second = await client.complete(request(*history, tools=(READ_FILE,)))

    assert server.bodies[1]["input"] == [
        {"role": "user", "content": "What is in src/app.py?"},
        {
            "type": "function_call",
            "call_id": "call_Qm3x",
            "name": "read_file",
            "arguments": '{"path": "src/app.py"}',
            "id": call["id"],
        },
        {"type": "function_call_output", "call_id": "call_Qm3x", "output": "def main(): ..."},
    ]
    assert second.text == "It defines main()."
    assert len(server.requests) == 2


async def test_responses_native_calls_are_parsed_and_answered(make_client: MakeClient) -> None:
    operation = {
        "type": "update_file",
        "path": "src/a.py",
        "diff": "@@ def f():\n-    pass\n+    return 1\n",
    }
    patch = apply_patch_call_item(operation, call_id="call_P1")
    shell = shell_call_item(["pytest -q", "git status"], call_id="call_S1", timeout_ms=60000)
    server = ScriptedServer(
        ok(response([patch, shell])), ok(response([message_item("All green.")]))
    )
    client = make_client(server)
    first = await client.complete(request(tools=(APPLY_PATCH, SHELL)))

    assert server.bodies[0]["tools"] == [{"type": "apply_patch"}, {"type": "shell"}]
    patch_call, shell_call = first.tool_calls
    assert (patch_call.kind, patch_call.name, patch_call.call_id) == (
        "apply_patch",
        "apply_patch",
        "call_P1",
    )
    assert patch_call.item_id == patch["id"]
    assert json.loads(patch_call.arguments) == operation
    assert (shell_call.kind, shell_call.name, shell_call.item_id) == ("shell", "shell", shell["id"])
    assert json.loads(shell_call.arguments) == {
        "commands": ["pytest -q", "git status"],
        "timeout_ms": 60000,
        "max_output_length": 4096,
    }

    per_command = [
        {"stdout": "3 passed\n", "stderr": "", "outcome": {"type": "exit", "exit_code": 0}},
        {"stdout": "", "stderr": "", "outcome": {"type": "timeout"}},
    ]
    history = (
        UserMessage(content="Fix f."),
        AssistantMessage(tool_calls=first.tool_calls),
        ToolResultMessage(
            call_id="call_P1",
            name="apply_patch",
            kind="apply_patch",
            content="Updated src/a.py",
            native={"status": "completed"},
        ),
        ToolResultMessage(
            call_id="call_S1",
            name="shell",
            kind="shell",
            content="3 passed",
            native={"output": per_command, "max_output_length": 4096},
        ),
    )
    await client.complete(request(*history, tools=(APPLY_PATCH, SHELL)))

    assert server.bodies[1]["input"] == [
        {"role": "user", "content": "Fix f."},
        {
            "type": "apply_patch_call",
            "call_id": "call_P1",
            "status": "completed",
            "operation": operation,
            "id": patch["id"],
        },
        {
            "type": "shell_call",
            "call_id": "call_S1",
            "status": "completed",
            "action": {
                "commands": ["pytest -q", "git status"],
                "timeout_ms": 60000,
                "max_output_length": 4096,
            },
            "id": shell["id"],
        },
        {
            "type": "apply_patch_call_output",
            "call_id": "call_P1",
            "status": "completed",
            "output": "Updated src/a.py",
        },
        {
            "type": "shell_call_output",
            "call_id": "call_S1",
            "output": per_command,
            "max_output_length": 4096,
        },
    ]
    assert "instructions" not in server.bodies[1]


async def test_responses_failed_patch_without_native_reports_failed(
    make_client: MakeClient,
) -> None:
    server = ScriptedServer(ok(response([message_item("ok")])))
    history = (
        UserMessage(content="Fix f."),
        AssistantMessage(
            tool_calls=(
                ToolCall(
                    call_id="call_P2",
                    name="apply_patch",
                    kind="apply_patch",
                    arguments='{"type": "delete_file", "path": "gone.py"}',
                ),
            )
        ),
        ToolResultMessage(
            call_id="call_P2",
            name="apply_patch",
            kind="apply_patch",
            content="gone.py does not exist",
            is_error=True,
        ),
    )
    await make_client(server).complete(request(*history, tools=(APPLY_PATCH,)))
    assert server.body["input"][1:] == [
        {
            "type": "apply_patch_call",
            "call_id": "call_P2",
            "status": "completed",
            "operation": {"type": "delete_file", "path": "gone.py"},
        },
        {
            "type": "apply_patch_call_output",
            "call_id": "call_P2",
            "status": "failed",
            "output": "gone.py does not exist",
        },
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("read_file", {"type": "function", "name": "read_file"}),
        ("apply_patch", {"type": "apply_patch"}),
        ("none", "none"),
    ],
    ids=["function", "native", "none"],
)
async def test_responses_tool_choice(make_client: MakeClient, choice: str, expected: Any) -> None:
    server = ScriptedServer(ok(response([message_item("ok")])))
    await make_client(server).complete(request(tools=(READ_FILE, APPLY_PATCH), tool_choice=choice))
    assert server.body["tool_choice"] == expected


async def test_responses_native_tool_needs_the_capability(make_client: MakeClient) -> None:
    server = ScriptedServer()
    client = make_client(server, capabilities=ModelCapabilities(responses_api=True))
    with pytest.raises(ValueError, match="native_tools"):
        await client.complete(request(tools=(SHELL,)))
    assert server.requests == []


async def test_responses_usage_counts_cached_and_reasoning_tokens(make_client: MakeClient) -> None:
    usage = responses_usage(input_tokens=5120, cached=4096, output_tokens=700, reasoning=512)
    server = ScriptedServer(ok(response([message_item("ok")], usage=usage)))
    reply = await make_client(server).complete(request())
    assert reply.usage == TokenUsage(
        input_tokens=5120,
        cached_input_tokens=4096,
        output_tokens=700,
        reasoning_tokens=512,
        requests=1,
    )


async def test_responses_incomplete_reply_reports_length(make_client: MakeClient) -> None:
    payload = response(
        [message_item("The plan is")], status="incomplete", incomplete_reason="max_output_tokens"
    )
    reply = await make_client(ScriptedServer(ok(payload))).complete(request())
    assert (reply.text, reply.finish_reason) == ("The plan is", "length")


async def test_responses_stream_yields_deltas_then_the_reply(make_client: MakeClient) -> None:
    usage = responses_usage(input_tokens=900, cached=512, output_tokens=12, reasoning=0)
    final = response([message_item("Hello, world!")], usage=usage)
    server = ScriptedServer(sse(response_text_stream(["Hello", ", ", "world!"], final), named=True))
    events = [event async for event in make_client(server).stream(request())]

    assert events[:3] == [TextDelta(text="Hello"), TextDelta(text=", "), TextDelta(text="world!")]
    [done] = events[3:]
    assert isinstance(done, ReplyDone)
    assert done.reply.text == "Hello, world!"
    assert done.reply.usage.cached_input_tokens == 512
    assert server.body["stream"] is True


async def test_responses_stream_error_event_is_retryable(make_client: MakeClient) -> None:
    events = [
        {
            "type": "response.created",
            "sequence_number": 0,
            "response": response([], status="in_progress"),
        },
        {
            "type": "error",
            "sequence_number": 1,
            "code": "server_error",
            "message": "The server had an error while processing your request.",
            "param": None,
        },
    ]
    client = make_client(ScriptedServer(sse(events, named=True)))
    with pytest.raises(ModelAPIError, match="server had an error") as caught:
        _ = [event async for event in client.stream(request())]
    assert (caught.value.status_code, caught.value.retryable) == (None, True)


async def test_responses_stream_failed_response_is_retryable(make_client: MakeClient) -> None:
    failed = response([], status="failed")
    failed["error"] = {"code": "server_error", "message": "The model crashed."}
    events = [
        {
            "type": "response.created",
            "sequence_number": 0,
            "response": response([], status="in_progress"),
        },
        {"type": "response.failed", "sequence_number": 1, "response": failed},
    ]
    client = make_client(ScriptedServer(sse(events, named=True)))
    with pytest.raises(ModelAPIError, match="The model crashed") as caught:
        _ = [event async for event in client.stream(request())]
    assert caught.value.retryable is True


async def test_responses_stream_without_streaming_capability(make_client: MakeClient) -> None:
    server = ScriptedServer(ok(response([message_item("whole")])))
    caps = ModelCapabilities(responses_api=True, streaming=False)
    events = [event async for event in make_client(server, capabilities=caps).stream(request())]
    assert events[0] == TextDelta(text="whole")
    assert isinstance(events[1], ReplyDone)
    assert "stream" not in server.body


async def test_responses_concurrent_calls_are_all_answered(make_client: MakeClient) -> None:
    def answer(sent: httpx2.Request) -> httpx2.Response:
        asked = json.loads(sent.content)["input"][0]["content"]
        return ok(response([message_item(f"answer to {asked}")]))

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
