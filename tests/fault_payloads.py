"""OpenAI wire shapes for the fault server: a `Reply` as the JSON body or the SSE events the real
SDK parses (Chat Completions and Responses, streamed or not), with deterministic usage. Pure.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from .fault_openai import ApiCall, Reply

CREATED_AT = 1767225600
STREAM_CHUNK_CHARS = 64
"""Characters per streamed content (or arguments) delta."""


def usage_counts(call: ApiCall, reply: Reply) -> tuple[int, int]:
    """(input, output) tokens: a quarter of the request bytes and of the output characters."""
    return len(call.raw) // 4, reply.output_chars // 4


def error_body(message: str, *, type_: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def completion_body(call: ApiCall, reply: Reply, *, rid: str) -> dict[str, Any]:
    """A whole reply as the non-streamed body of either API."""
    if call.api == "chat":
        return _chat_completion(call, reply, rid=rid)
    return _response(call, reply, rid=rid, status="completed")


def stream_events(call: ApiCall, reply: Reply, *, rid: str, terminated: bool = True) -> list[bytes]:
    """The SSE events of a streamed reply, each a complete `data:` block.

    Args:
        call: The request.
        reply: What to say.
        rid: The response id.
        terminated: False leaves out the end: chat loses its finish chunk, usage chunk and
            `[DONE]`; Responses loses `response.completed`.
    """
    if call.api == "chat":
        return [_sse(None, e) for e in _chat_chunks(call, reply, rid=rid, terminated=terminated)]
    return [
        _sse(e["type"], e) for e in _response_events(call, reply, rid=rid, terminated=terminated)
    ]


# Chat Completions ---------------------------------------------------------------------------


def _chat_usage(call: ApiCall, reply: Reply) -> dict[str, Any]:
    prompt, completion = usage_counts(call, reply)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def _chat_tool_calls(reply: Reply) -> list[dict[str, Any]]:
    return [
        {
            "id": c.call_id,
            "type": "function",
            "function": {"name": c.name, "arguments": c.arguments},
        }
        for c in reply.tool_calls
    ]


def _finish(reply: Reply) -> str:
    return "tool_calls" if reply.tool_calls else "stop"


def _chat_completion(call: ApiCall, reply: Reply, *, rid: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = _chat_tool_calls(reply)
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": _finish(reply)}
    return {
        "id": f"chatcmpl-{rid}",
        "object": "chat.completion",
        "created": CREATED_AT,
        "model": call.model,
        "choices": [choice],
        "usage": _chat_usage(call, reply),
        "system_fingerprint": "fp_fault",
    }


def _chat_chunks(
    call: ApiCall, reply: Reply, *, rid: str, terminated: bool
) -> Iterator[dict[str, Any] | None]:
    """Chunk dicts; None stands for the `[DONE]` sentinel."""

    def chunk(delta: dict[str, Any] | None, finish: str | None = None) -> dict[str, Any]:
        choices = (
            []
            if delta is None
            else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        )
        return {
            "id": f"chatcmpl-{rid}",
            "object": "chat.completion.chunk",
            "created": CREATED_AT,
            "model": call.model,
            "system_fingerprint": "fp_fault",
            "choices": choices,
            "usage": None,
        }

    yield chunk({"role": "assistant", "content": ""})
    for piece in _pieces(reply.text):
        yield chunk({"content": piece})
    for index, tc in enumerate(reply.tool_calls):
        head = {"index": index, "id": tc.call_id, "type": "function"}
        yield chunk({"tool_calls": [{**head, "function": {"name": tc.name, "arguments": ""}}]})
        for piece in _pieces(tc.arguments):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    if not terminated:
        return
    yield chunk({}, _finish(reply))
    if call.include_usage:
        yield {**chunk(None), "usage": _chat_usage(call, reply)}
    yield None


# Responses ----------------------------------------------------------------------------------


def _response_usage(call: ApiCall, reply: Reply) -> dict[str, Any]:
    prompt, completion = usage_counts(call, reply)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def _output_items(reply: Reply, rid: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if reply.text:
        part: dict[str, Any] = {
            "type": "output_text",
            "annotations": [],
            "logprobs": [],
            "text": reply.text,
        }
        items.append(
            {
                "id": f"msg_{rid}",
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [part],
            }
        )
    items.extend(
        {
            "id": f"fc_{rid}_{index}",
            "type": "function_call",
            "status": "completed",
            "arguments": tc.arguments,
            "call_id": tc.call_id,
            "name": tc.name,
        }
        for index, tc in enumerate(reply.tool_calls)
    )
    return items


def _response(call: ApiCall, reply: Reply, *, rid: str, status: str) -> dict[str, Any]:
    done = status == "completed"
    return {
        "id": f"resp_{rid}",
        "object": "response",
        "created_at": CREATED_AT,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": call.body.get("instructions"),
        "max_output_tokens": call.body.get("max_output_tokens"),
        "model": call.model,
        "output": _output_items(reply, rid) if done else [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": False,
        "temperature": 1.0,
        "text": call.body.get("text") or {"format": {"type": "text"}},
        "tool_choice": call.body.get("tool_choice", "auto"),
        "tools": call.body.get("tools", []),
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": _response_usage(call, reply) if done else None,
        "user": None,
        "metadata": {},
    }


def _response_events(
    call: ApiCall, reply: Reply, *, rid: str, terminated: bool
) -> Iterator[dict[str, Any]]:
    pending = _response(call, reply, rid=rid, status="in_progress")
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": pending},
        {"type": "response.in_progress", "response": pending},
    ]
    for index, item in enumerate(_output_items(reply, rid)):
        events.extend(_item_events(index, item))
    if terminated:
        events.append(
            {
                "type": "response.completed",
                "response": _response(call, reply, rid=rid, status="completed"),
            }
        )
    for number, event in enumerate(events):
        yield {**event, "sequence_number": number}


def _item_events(index: int, item: dict[str, Any]) -> list[dict[str, Any]]:
    where = {"item_id": item["id"], "output_index": index}
    if item["type"] == "function_call":
        arguments = str(item["arguments"])
        return [
            {
                "type": "response.output_item.added",
                "output_index": index,
                "item": {**item, "status": "in_progress", "arguments": ""},
            },
            *(
                {"type": "response.function_call_arguments.delta", **where, "delta": piece}
                for piece in _pieces(arguments)
            ),
            {"type": "response.function_call_arguments.done", **where, "arguments": arguments},
            {"type": "response.output_item.done", "output_index": index, "item": item},
        ]
    text = str(item["content"][0]["text"])
    part: dict[str, Any] = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
    at = {**where, "content_index": 0}
    return [
        {
            "type": "response.output_item.added",
            "output_index": index,
            "item": {**item, "status": "in_progress", "content": []},
        },
        {"type": "response.content_part.added", **at, "part": part},
        *(
            {"type": "response.output_text.delta", **at, "delta": piece, "logprobs": []}
            for piece in _pieces(text)
        ),
        {"type": "response.output_text.done", **at, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **at, "part": {**part, "text": text}},
        {"type": "response.output_item.done", "output_index": index, "item": item},
    ]


def _pieces(text: str) -> Iterator[str]:
    for start in range(0, len(text), STREAM_CHUNK_CHARS):
        yield text[start : start + STREAM_CHUNK_CHARS]


def _sse(event: str | None, data: Mapping[str, Any] | None) -> bytes:
    payload = "[DONE]" if data is None else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()
