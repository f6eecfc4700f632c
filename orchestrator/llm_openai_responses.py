"""`OpenAIResponsesClient`: the OpenAI Responses API behind the `ModelClient` seam.

Stateless by design: every call sends the whole conversation in `input` (nothing is stored
server side unless `store=True`), so retries, replays and tier escalation need no server state.
Other servers' /v1/responses get the same adaptations as the chat client (`llm_openai_shape.py`):
`text.format` only where it is honoured, named `tool_choice` objects only where accepted.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from .errors import ModelAPIError
from .llm import (
    AssistantMessage,
    JSONValue,
    ModelCapabilities,
    ModelReply,
    ModelRequest,
    ReplyDone,
    StreamEvent,
    SystemMessage,
    TextDelta,
    ToolCall,
    ToolDefinition,
    ToolKind,
    ToolResultMessage,
    UserMessage,
    whole_reply_stream,
)
from .llm_openai import (
    EMPTY_PARAMETERS,
    OpenAIClientBase,
    RawResponse,
    decode_native,
    native_tool_name,
    parse_output,
    rate_limits,
    token_usage,
)
from .llm_openai_shape import OutputShape, named_choice, output_cap, output_shape
from .models import TokenUsage

if TYPE_CHECKING:
    from openai.types.responses import Response, ResponseStreamEvent, ResponseUsage

    from .llm_openai import AsyncHTTPClient

RESPONSES_CAPABILITIES = ModelCapabilities(
    structured_output="json_schema",
    forced_tool_choice=True,
    responses_api=True,
    native_tools=frozenset({"apply_patch", "shell"}),
    streaming=True,
    prompt_caching=True,
)
"""What the OpenAI Responses API offers; the default for `OpenAIResponsesClient`."""

_INCOMPLETE_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}


class OpenAIResponsesClient(OpenAIClientBase):
    """A `StreamingModelClient` over `POST /responses`; one SDK client, safe for concurrent use.

    Args:
        api_key: Sent as the bearer token; None sends a placeholder (the SDK never reads the
            environment on our behalf, `Settings` does).
        base_url: None means `https://api.openai.com/v1`.
        http_client: An `httpx2.AsyncClient` (or legacy `httpx.AsyncClient`) to send through;
            the caller keeps ownership and closes it.
        timeout_s: Per-request timeout; expiry raises `ModelTimeoutError`.
        capabilities: Overrides `RESPONSES_CAPABILITIES`.
        store: Let OpenAI keep the responses; off, since every call is self-contained.
        extra_body: Extra JSON fields merged into every request body (e.g. llama.cpp's
            `parallel_tool_calls`); they win over the fields this client sets.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        http_client: AsyncHTTPClient | None = None,
        timeout_s: float = 120.0,
        capabilities: ModelCapabilities | None = None,
        store: bool = False,
        extra_body: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(
            api_key=api_key,
            base_url=base_url,
            http_client=http_client,
            timeout_s=timeout_s,
            capabilities=capabilities or RESPONSES_CAPABILITIES,
        )
        self._store = store
        self._extra_body = dict(extra_body) if extra_body else None

    def _body(self, request: ModelRequest) -> dict[str, Any]:
        body = responses_body(request, self._capabilities, store=self._store)
        if self._extra_body:
            body["extra_body"] = {**body.get("extra_body", {}), **self._extra_body}
        return body

    async def complete(self, request: ModelRequest) -> ModelReply:
        """Run one request to completion; see `map_openai_errors` for what it raises."""
        body = self._body(request)
        with self._mapped_errors():
            raw = cast(RawResponse, await self._client.responses.with_raw_response.create(**body))
            response = cast("Response", raw.parse())
        reply = reply_from_response(response, request, self._capabilities)
        return replace(reply, rate_limits=rate_limits(raw.headers))

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Yield `output_text` deltas as they arrive, then one `ReplyDone`.

        Without `capabilities.streaming` this runs `complete` and yields its text in one piece.
        """
        if not self._capabilities.streaming:
            for event in whole_reply_stream(await self.complete(request)):
                yield event
            return
        body = self._body(request)
        final: Response | None = None
        with self._mapped_errors():
            raw = await self._client.responses.with_raw_response.create(**body, stream=True)
            events = raw.parse()
            async with events:
                async for event in events:
                    if event.type == "response.output_text.delta":
                        yield TextDelta(text=event.delta)
                    else:
                        final = _final_response(event) or final
        if final is None:
            raise ModelAPIError(
                "the response stream ended before the response completed",
                status_code=None,
                retryable=True,
            )
        reply = reply_from_response(final, request, self._capabilities)
        yield ReplyDone(reply=replace(reply, rate_limits=rate_limits(raw.headers)))


def _final_response(event: ResponseStreamEvent) -> Response | None:
    if event.type == "response.completed" or event.type == "response.incomplete":
        return event.response
    if event.type == "response.failed":
        return event.response
    if event.type == "error":
        raise ModelAPIError(
            f"model API failed mid-stream: {event.message} ({event.code})",
            status_code=None,
            retryable=True,
        )
    return None


def responses_body(
    request: ModelRequest, capabilities: ModelCapabilities, *, store: bool
) -> dict[str, Any]:
    """The `responses.create` keyword arguments for one request (the JSON body, minus `stream`).

    A `json_object_schema` format is llama.cpp's `response_format`, which its /v1/responses
    reads too; it goes in `extra_body`, since the SDK has no such parameter.
    """
    shape = output_shape(request, capabilities, text_format=capabilities.responses_text_format)
    instructions, items = _input_items(request)
    if shape is not None and shape.prompt_note is not None:
        note = shape.prompt_note
        instructions = note if instructions is None else f"{instructions}\n\n{note}"
    body: dict[str, Any] = {"model": request.model, "input": items, "store": store}
    if instructions is not None:
        body["instructions"] = instructions
    if request.tools:
        body["tools"], body["tool_choice"] = _tools_and_choice(request, capabilities)
    if shape is not None and shape.format is not None:
        _add_format(body, shape)
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if (cap := output_cap(request, capabilities)) is not None:
        body["max_output_tokens"] = cap
    if request.reasoning_effort is not None:
        body["reasoning"] = {"effort": request.reasoning_effort}
    if request.prompt_cache_key is not None and capabilities.prompt_caching:
        body["prompt_cache_key"] = request.prompt_cache_key
    return body


def _add_format(body: dict[str, Any], shape: OutputShape) -> None:
    match shape.format:
        case "json_schema":
            config: dict[str, JSONValue] = {
                "type": "json_schema",
                "name": shape.name,
                "schema": shape.schema,
            }
            if shape.strict:
                config["strict"] = True
            body["text"] = {"format": config}
        case "json_object":
            body["text"] = {"format": {"type": "json_object"}}
        case "json_object_schema":
            response_format = {"type": "json_object", "schema": shape.schema}
            body["extra_body"] = {"response_format": response_format}
        case None:
            pass


def _input_items(request: ModelRequest) -> tuple[str | None, list[dict[str, JSONValue]]]:
    """The first system message becomes `instructions`; everything else an input item.

    Assistant text is a typed `message` item: servers that convert input items to chat messages
    (llama.cpp) cannot tell an untyped assistant item from the other kinds.
    """
    instructions: str | None = None
    items: list[dict[str, JSONValue]] = []
    for message in request.messages:
        match message:
            case SystemMessage(content=content) if instructions is None:
                instructions = content
            case SystemMessage(content=content):
                items.append({"role": "system", "content": content})
            case UserMessage(content=content):
                items.append({"role": "user", "content": content})
            case AssistantMessage():
                if message.content:
                    text = {"type": "message", "role": "assistant", "content": message.content}
                    items.append(text)
                items.extend(_call_item(call) for call in message.tool_calls)
            case ToolResultMessage():
                items.append(_output_item(message))
    return instructions, items


def _call_item(call: ToolCall) -> dict[str, JSONValue]:
    """Replay one tool call as the output item the API produced."""
    item: dict[str, JSONValue]
    match call.kind:
        case "function":
            item = {"type": "function_call", "call_id": call.call_id, "name": call.name}
            item["arguments"] = call.arguments
        case "apply_patch":
            operation = decode_native(call.arguments, what="apply_patch_call")
            item = {"type": "apply_patch_call", "call_id": call.call_id, "status": "completed"}
            item["operation"] = operation
        case "shell":
            action = decode_native(call.arguments, what="shell_call")
            item = {"type": "shell_call", "call_id": call.call_id, "status": "completed"}
            item["action"] = action
    if call.item_id is not None:
        item["id"] = call.item_id
    return item


def _output_item(message: ToolResultMessage) -> dict[str, JSONValue]:
    """The answer to one call, in the item type its kind needs."""
    native = message.native or {}
    match message.kind:
        case "function":
            return {
                "type": "function_call_output",
                "call_id": message.call_id,
                "output": message.content,
            }
        case "apply_patch":
            status = native.get("status") or ("failed" if message.is_error else "completed")
            return {
                "type": "apply_patch_call_output",
                "call_id": message.call_id,
                "status": status,
                "output": message.content,
            }
        case "shell":
            item: dict[str, JSONValue] = {
                "type": "shell_call_output",
                "call_id": message.call_id,
                "output": native.get("output") or _shell_output(message),
            }
            if native.get("max_output_length") is not None:
                item["max_output_length"] = native["max_output_length"]
            return item


def _shell_output(message: ToolResultMessage) -> list[JSONValue]:
    """One output entry from plain text, when the tool gave no per-command outputs."""
    outcome = {"type": "exit", "exit_code": 1 if message.is_error else 0}
    return [{"stdout": message.content, "stderr": "", "outcome": outcome}]


def _tools_and_choice(
    request: ModelRequest, capabilities: ModelCapabilities
) -> tuple[list[dict[str, JSONValue]], JSONValue]:
    """The tools and a `tool_choice` the server honours: a named tool goes as an object where
    `forced_tool_choice` allows one, else alone with "required"."""
    name, how = named_choice(request, capabilities)
    tools = request.tools
    choice: JSONValue = how
    if name is not None and how == "required":
        tools = tuple(tool for tool in tools if tool.name == name)
    elif name is not None:
        kind = next(tool.kind for tool in tools if tool.name == name)
        choice = {"type": "function", "name": name} if kind == "function" else {"type": kind}
    return [_tool_param(tool, capabilities) for tool in tools], choice


def _tool_param(tool: ToolDefinition, capabilities: ModelCapabilities) -> dict[str, JSONValue]:
    if tool.kind == "function":
        return {
            "type": "function",
            "name": tool.name,
            "description": tool.description,
            "parameters": dict(tool.parameters or EMPTY_PARAMETERS),
            "strict": tool.strict and capabilities.strict_schema,
        }
    if tool.kind not in capabilities.native_tools:
        raise ValueError(
            f"tool {tool.name!r} is a native {tool.kind} tool, but this client's capabilities "
            f"do not list it in native_tools; send it as a function tool instead"
        )
    return {"type": tool.kind}


def reply_from_response(
    response: Response,
    request: ModelRequest,
    capabilities: ModelCapabilities = RESPONSES_CAPABILITIES,
) -> ModelReply:
    """Our reply from a finished `Response`: text, tool calls, parsed output and usage.

    The text is parsed leniently unless the server enforced a strict schema.

    Raises:
        ModelAPIError: the response failed server side (retryable).
        ModelBehaviorError: the text does not fit `request.output_type`.
    """
    if response.status == "failed":
        message = response.error.message if response.error else "no error details"
        raise ModelAPIError(f"the response failed: {message}", status_code=None, retryable=True)
    texts: list[str] = []
    calls: list[ToolCall] = []
    for item in response.output:
        if item.type == "message":
            for part in item.content:
                texts.append(part.text if part.type == "output_text" else part.refusal)
        elif item.type == "function_call":
            calls.append(
                ToolCall(
                    call_id=item.call_id,
                    name=item.name,
                    arguments=item.arguments or "{}",
                    item_id=item.id,
                )
            )
        elif item.type == "apply_patch_call":
            operation = json.dumps(item.operation.to_dict(mode="json"))
            calls.append(_native_call(request, "apply_patch", item.call_id, operation, item.id))
        elif item.type == "shell_call":
            action = json.dumps(item.action.to_dict(mode="json"))
            calls.append(_native_call(request, "shell", item.call_id, action, item.id))
    text = "".join(texts)
    usage = _usage(response.usage)
    parsed = None
    shape = output_shape(request, capabilities, text_format=capabilities.responses_text_format)
    if request.output_type is not None and shape is not None and not calls:
        parsed = parse_output(
            text, request.output_type, lenient=shape.lenient, usage=usage, model=response.model
        )
    return ModelReply(
        text=text,
        parsed=parsed,
        tool_calls=tuple(calls),
        usage=usage,
        model=response.model,
        finish_reason=_finish_reason(response, has_calls=bool(calls)),
    )


def _native_call(
    request: ModelRequest, kind: ToolKind, call_id: str, arguments: str, item_id: str
) -> ToolCall:
    name = native_tool_name(request, kind)
    return ToolCall(call_id=call_id, name=name, arguments=arguments, kind=kind, item_id=item_id)


def _finish_reason(response: Response, *, has_calls: bool) -> str:
    if response.status == "incomplete":
        reason = response.incomplete_details.reason if response.incomplete_details else None
        return _INCOMPLETE_REASONS.get(reason or "", "incomplete")
    return "tool_calls" if has_calls else "stop"


def _usage(usage: ResponseUsage | None) -> TokenUsage:
    if usage is None:
        return token_usage(input_tokens=0, cached=0, output_tokens=0, reasoning=0)
    input_details = getattr(usage, "input_tokens_details", None)
    output_details = getattr(usage, "output_tokens_details", None)
    return token_usage(
        input_tokens=usage.input_tokens,
        cached=getattr(input_details, "cached_tokens", None),
        output_tokens=usage.output_tokens,
        reasoning=getattr(output_details, "reasoning_tokens", None),
    )
