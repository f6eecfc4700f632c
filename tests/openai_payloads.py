"""Realistic OpenAI wire payloads and a scripted in-process server for the openai client tests.

Shapes follow the real API (ids like `resp_…`, `msg_…`, `fc_…`, `call_…`, `apc_…`, `sh_…`), so the
real `openai` SDK parses them exactly as it would parse a live reply.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from itertools import count
from typing import Any

import httpx2

CREATED_AT = 1767225600
MODEL = "gpt-5.4-mini-2026-03-17"
_ids = count(1)

Reply = httpx2.Response | Exception | Callable[[httpx2.Request], httpx2.Response]


def _id(prefix: str) -> str:
    return f"{prefix}_{next(_ids):04d}68c1f0e2a81b9c7d"


class ScriptedServer:
    """An `httpx2.MockTransport` handler that answers from a script and records every request."""

    def __init__(self, *replies: Reply) -> None:
        self._replies = list(replies)
        self.requests: list[httpx2.Request] = []

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        if not self._replies:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        reply = self._replies[0] if callable(self._replies[0]) else self._replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, httpx2.Response):
            return reply
        return reply(request)

    def http_client(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(transport=httpx2.MockTransport(self.handle))

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(request.content) for request in self.requests]

    @property
    def body(self) -> dict[str, Any]:
        """The body of the only request."""
        assert len(self.requests) == 1, f"expected one request, got {len(self.requests)}"
        return self.bodies[0]


def ok(payload: Mapping[str, Any]) -> httpx2.Response:
    return httpx2.Response(200, json=payload, headers={"x-request-id": _id("req")})


def error(status: int, message: str, *, type_: str, code: str | None = None) -> httpx2.Response:
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return httpx2.Response(status, json=body, headers={"x-request-id": _id("req")})


def sse(events: Iterable[Mapping[str, Any]], *, named: bool, done: bool = False) -> httpx2.Response:
    """A `text/event-stream` body; Responses events carry `event:` lines, chat chunks do not."""
    lines: list[str] = []
    for event in events:
        if named:
            lines.append(f"event: {event['type']}")
        lines.append(f"data: {json.dumps(event)}")
        lines.append("")
    if done:
        lines += ["data: [DONE]", ""]
    content = ("\n".join(lines) + "\n").encode()
    return httpx2.Response(200, content=content, headers={"content-type": "text/event-stream"})


# Responses API ------------------------------------------------------------------------------


def responses_usage(
    *, input_tokens: int = 812, cached: int = 0, output_tokens: int = 57, reasoning: int = 0
) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input_tokens + output_tokens,
    }


def message_item(text: str) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
    return {
        "id": _id("msg"),
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [part],
    }


def reasoning_item() -> dict[str, Any]:
    return {"id": _id("rs"), "type": "reasoning", "summary": []}


def function_call_item(name: str, arguments: Mapping[str, Any], *, call_id: str) -> dict[str, Any]:
    return {
        "id": _id("fc"),
        "type": "function_call",
        "status": "completed",
        "arguments": json.dumps(arguments),
        "call_id": call_id,
        "name": name,
    }


def apply_patch_call_item(operation: Mapping[str, Any], *, call_id: str) -> dict[str, Any]:
    return {
        "id": _id("apc"),
        "type": "apply_patch_call",
        "status": "completed",
        "call_id": call_id,
        "operation": dict(operation),
    }


def shell_call_item(
    commands: list[str], *, call_id: str, timeout_ms: int | None = None, max_output: int = 4096
) -> dict[str, Any]:
    action = {"commands": commands, "timeout_ms": timeout_ms, "max_output_length": max_output}
    return {
        "id": _id("sh"),
        "type": "shell_call",
        "status": "completed",
        "call_id": call_id,
        "action": action,
    }


def response(
    output: list[dict[str, Any]],
    *,
    usage: dict[str, Any] | None = None,
    status: str = "completed",
    incomplete_reason: str | None = None,
    model: str = MODEL,
) -> dict[str, Any]:
    return {
        "id": _id("resp"),
        "object": "response",
        "created_at": CREATED_AT,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": "low", "summary": None},
        "service_tier": "default",
        "store": False,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage if usage is not None else responses_usage(),
        "user": None,
        "metadata": {},
    }


def response_text_stream(deltas: list[str], final: dict[str, Any]) -> list[dict[str, Any]]:
    """The event sequence of one streamed text message, ending in `response.completed`."""
    seq = count()
    item_id = final["output"][-1]["id"]
    in_progress: dict[str, Any] = {**final, "status": "in_progress", "output": [], "usage": None}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": in_progress},
        {"type": "response.in_progress", "response": in_progress},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {**final["output"][-1], "status": "in_progress", "content": []},
        },
    ]
    for delta in deltas:
        events.append(
            {
                "type": "response.output_text.delta",
                "item_id": item_id,
                "output_index": 0,
                "content_index": 0,
                "delta": delta,
                "logprobs": [],
            }
        )
    events.append(
        {"type": "response.output_item.done", "output_index": 0, "item": final["output"][-1]}
    )
    events.append({"type": "response.completed", "response": final})
    return [{**event, "sequence_number": next(seq)} for event in events]


# Chat Completions ---------------------------------------------------------------------------


def chat_usage(
    *, prompt: int = 412, completion: int = 33, cached: int | None = 0, reasoning: int | None = 0
) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached, "audio_tokens": 0}
    if reasoning is not None:
        usage["completion_tokens_details"] = {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        }
    return usage


def chat_tool_call(
    name: str, arguments: Mapping[str, Any], *, call_id: str | None
) -> dict[str, Any]:
    """`call_id=None` leaves out `id` and `type`, as some local servers do."""
    call: dict[str, Any] = {"function": {"name": name, "arguments": json.dumps(arguments)}}
    if call_id is not None:
        call = {"id": call_id, "type": "function", **call}
    return call


def chat_completion(
    content: str | None,
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    finish_reason: str = "stop",
    usage: dict[str, Any] | None = None,
    model: str = "Qwen/Qwen3-8B",
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": _id("chatcmpl"),
        "object": "chat.completion",
        "created": CREATED_AT,
        "model": model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
        ],
        "usage": usage if usage is not None else chat_usage(),
        "system_fingerprint": "fp_b1-6bd9e3c",
    }


def chat_chunk(
    delta: Mapping[str, Any] | None,
    *,
    finish_reason: str | None = None,
    usage: dict[str, Any] | None = None,
    model: str = "Qwen/Qwen3-8B",
) -> dict[str, Any]:
    """One `chat.completion.chunk`; `delta=None` makes the final usage-only chunk."""
    choices = (
        []
        if delta is None
        else [{"index": 0, "delta": dict(delta), "logprobs": None, "finish_reason": finish_reason}]
    )
    return {
        "id": "chatcmpl-stream0001",
        "object": "chat.completion.chunk",
        "created": CREATED_AT,
        "model": model,
        "system_fingerprint": "fp_b1-6bd9e3c",
        "choices": choices,
        "usage": usage,
    }
