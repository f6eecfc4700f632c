"""The real `openai.AsyncOpenAI` client pointed at a fault server, and what it saw, in one shape
for both APIs: shared by the fault-server tests."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal

import openai
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam
from openai.types.responses import Response, ToolParam

from .fault_openai import ApiCall, Reply, ToolCallOut
from .fault_plan import FaultKind, FaultPlan
from .fault_server import FaultServer

KEY = "sk-test-secret-4242"
Api = Literal["chat", "responses"]
APIS: tuple[Api, ...] = ("chat", "responses")
_TOOL: dict[str, object] = {
    "type": "object",
    "properties": {"text": {"type": "string"}},
    "required": ["text"],
}


def respond(call: ApiCall) -> Reply:
    """Text, or one call of the first offered tool."""
    if call.tool_names:
        arguments = json.dumps({"text": "a b c"})
        return Reply(
            tool_calls=(
                ToolCallOut(name=call.tool_names[0], arguments=arguments, call_id="call_1"),
            )
        )
    return Reply(text="hello from the fault server " * 8)


@dataclass(slots=True)
class Seen:
    """What the client got, in one shape for both APIs."""

    text: str = ""
    calls: list[tuple[str, str, str]] = field(default_factory=lambda: [])
    finish: str | None = None
    """chat: the last finish_reason; responses: the final status."""
    usage: tuple[int, int] | None = None
    events: int = 0


@asynccontextmanager
async def sdk(srv: FaultServer, timeout_s: float = 2.0) -> AsyncGenerator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(
        api_key=KEY, base_url=srv.base_url, max_retries=0, timeout=timeout_s
    )
    try:
        yield client
    finally:
        await client.close()


async def ask(
    client: openai.AsyncOpenAI,
    api: Api,
    *,
    stream: bool,
    tools: bool = False,
    seen: Seen | None = None,
) -> Seen:
    """One call; `seen` fills as events arrive, so a test can look at it after a raise."""
    seen = Seen() if seen is None else seen
    if api == "chat":
        return await _chat(client, seen, stream=stream, tools=tools)
    return await _responses(client, seen, stream=stream, tools=tools)


async def _chat(client: openai.AsyncOpenAI, seen: Seen, *, stream: bool, tools: bool) -> Seen:
    tool_params: list[ChatCompletionToolParam] = (
        [{"type": "function", "function": {"name": "wc", "parameters": _TOOL}}] if tools else []
    )
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
    if not stream:
        completion = await client.chat.completions.create(
            model="m", messages=messages, tools=tool_params or openai.omit
        )
        message = completion.choices[0].message
        seen.text = message.content or ""
        seen.calls = [
            (c.function.name, c.function.arguments, c.id)
            for c in message.tool_calls or ()
            if c.type == "function"
        ]
        seen.finish = completion.choices[0].finish_reason
        usage = completion.usage
        seen.usage = None if usage is None else (usage.prompt_tokens, usage.completion_tokens)
        return seen
    chunks = await client.chat.completions.create(
        model="m",
        messages=messages,
        tools=tool_params or openai.omit,
        stream=True,
        stream_options={"include_usage": True},
    )
    arguments: dict[int, list[str]] = {}
    async with chunks:
        async for chunk in chunks:
            seen.events += 1
            if chunk.usage is not None:
                seen.usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
            for choice in chunk.choices:
                seen.text += choice.delta.content or ""
                seen.finish = choice.finish_reason or seen.finish
                for delta in choice.delta.tool_calls or ():
                    if delta.function is not None and delta.function.name:
                        seen.calls.append((delta.function.name, "", delta.id or ""))
                    if delta.function is not None:
                        arguments.setdefault(delta.index, []).append(delta.function.arguments or "")
    seen.calls = [
        (name, "".join(arguments.get(i, [])), cid) for i, (name, _, cid) in enumerate(seen.calls)
    ]
    return seen


async def _responses(client: openai.AsyncOpenAI, seen: Seen, *, stream: bool, tools: bool) -> Seen:
    tool_params: list[ToolParam] = (
        [{"type": "function", "name": "wc", "parameters": _TOOL, "strict": True}] if tools else []
    )
    if not stream:
        response = await client.responses.create(
            model="m", input="hi", tools=tool_params or openai.omit
        )
        _read_response(seen, response)
        return seen
    events = await client.responses.create(
        model="m", input="hi", tools=tool_params or openai.omit, stream=True
    )
    async with events:
        async for event in events:
            seen.events += 1
            if event.type == "response.output_text.delta":
                seen.text += event.delta
            elif event.type == "response.completed":
                _read_response(seen, event.response, text=False)
    return seen


def _read_response(seen: Seen, response: Response, *, text: bool = True) -> None:
    if text:
        seen.text = response.output_text
    seen.calls = [
        (item.name, item.arguments, item.call_id)
        for item in response.output
        if item.type == "function_call"
    ]
    seen.finish = response.status
    usage = response.usage
    seen.usage = None if usage is None else (usage.input_tokens, usage.output_tokens)


def only(kind: FaultKind, **plan: float) -> FaultPlan:
    """Every request faulted with `kind`."""
    return FaultPlan(rate=1.0, kinds=(kind,), **plan)


def root_cause(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return exc
