"""`OpenAIChatClient`: OpenAI-compatible Chat Completions (vLLM, Ollama, llama.cpp server, ...).

The request adapts to `ModelCapabilities`, never to a vendor's name: how structured output is asked
for (and whether it may share a request with tools), whether a lone tool must be named in
`tool_choice`, whether `tool_choice` may be an object, and the default output cap.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from .errors import ModelAPIError, ModelBehaviorError
from .llm import (
    AssistantMessage,
    JSONValue,
    Message,
    ModelCapabilities,
    ModelReply,
    ModelRequest,
    ReplyDone,
    StreamEvent,
    SystemMessage,
    TextDelta,
    ToolCall,
    ToolDefinition,
    ToolResultMessage,
    UserMessage,
    whole_reply_stream,
)
from .llm_openai import (
    EMPTY_PARAMETERS,
    OpenAIClientBase,
    RawResponse,
    parse_output,
    rate_limits,
    token_usage,
)
from .llm_openai_shape import OutputShape, named_choice, output_cap, output_shape
from .models import TokenUsage

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletion, ChatCompletionChunk
    from openai.types.completion_usage import CompletionUsage

    from .llm_openai import AsyncHTTPClient

CHAT_CAPABILITIES = ModelCapabilities()
"""OpenAI-like: strict `json_schema` output and `tool_choice` that may name a function."""


class OpenAIChatClient(OpenAIClientBase):
    """A `StreamingModelClient` over `POST /chat/completions`; safe for concurrent use.

    Args:
        api_key: Sent as the bearer token; None sends a placeholder (local servers need none).
        base_url: The server's `/v1` URL; None means `https://api.openai.com/v1`.
        http_client: An `httpx2.AsyncClient` (or legacy `httpx.AsyncClient`) to send through;
            the caller keeps ownership and closes it.
        timeout_s: Per-request timeout; expiry raises `ModelTimeoutError`.
        capabilities: What the server can do; overrides `CHAT_CAPABILITIES`.
        extra_body: Extra JSON fields merged into every request body (e.g. vLLM
            `chat_template_kwargs`); they win over the fields this client sets.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        http_client: AsyncHTTPClient | None = None,
        timeout_s: float = 120.0,
        capabilities: ModelCapabilities | None = None,
        extra_body: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(
            api_key=api_key,
            base_url=base_url,
            http_client=http_client,
            timeout_s=timeout_s,
            capabilities=capabilities or CHAT_CAPABILITIES,
        )
        self._extra_body = dict(extra_body) if extra_body else None

    async def complete(self, request: ModelRequest) -> ModelReply:
        """Run one request to completion; see `map_openai_errors` for what it raises."""
        body = chat_body(request, self._capabilities)
        with self._mapped_errors():
            raw = cast(
                RawResponse,
                await self._client.chat.completions.with_raw_response.create(
                    **body, extra_body=self._extra_body
                ),
            )
            completion = cast("ChatCompletion", raw.parse())
        reply = reply_from_completion(completion, request, self._capabilities)
        return replace(reply, rate_limits=rate_limits(raw.headers))

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Yield content deltas as they arrive, then one `ReplyDone` with tool calls assembled.

        Without `capabilities.streaming` this runs `complete` and yields its text in one piece.
        """
        if not self._capabilities.streaming:
            for event in whole_reply_stream(await self.complete(request)):
                yield event
            return
        body = chat_body(request, self._capabilities)
        assembly = _StreamAssembly()
        with self._mapped_errors():
            raw = await self._client.chat.completions.with_raw_response.create(
                **body,
                stream=True,
                stream_options={"include_usage": True},
                extra_body=self._extra_body,
            )
            chunks = raw.parse()
            async with chunks:
                async for chunk in chunks:
                    if text := assembly.add(chunk):
                        yield TextDelta(text=text)
        if not assembly.finished:
            raise ModelAPIError(
                "the chat stream ended before its last chunk (no finish_reason)",
                status_code=None,
                retryable=True,
            )
        reply = assembly.reply(request, self._capabilities)
        yield ReplyDone(reply=replace(reply, rate_limits=rate_limits(raw.headers)))


def chat_body(request: ModelRequest, capabilities: ModelCapabilities) -> dict[str, Any]:
    """The `chat.completions.create` keyword arguments for one request.

    Raises:
        ValueError: the request carries a native (non-function) tool or tool call, or tools
            while `capabilities.tool_calls` is off; the engine never sends those here.
    """
    shape = output_shape(request, capabilities)
    body: dict[str, Any] = {"model": request.model, "messages": _messages(request, shape)}
    if request.tools:
        tools, choice = _tools_and_choice(request, capabilities)
        body["tools"] = tools
        body["tool_choice"] = choice
    if shape is not None and shape.format is not None:
        body["response_format"] = _response_format(shape)
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if (cap := output_cap(request, capabilities)) is not None:
        body["max_tokens"] = cap
    if request.reasoning_effort is not None:
        body["reasoning_effort"] = request.reasoning_effort
    if request.prompt_cache_key is not None and capabilities.prompt_caching:
        body["prompt_cache_key"] = request.prompt_cache_key
    return body


def _messages(request: ModelRequest, shape: OutputShape | None) -> list[dict[str, JSONValue]]:
    messages = [_message(message) for message in request.messages]
    if shape is not None and shape.prompt_note is not None:
        note = shape.prompt_note
        if messages and messages[0]["role"] == "system":
            messages[0] = {"role": "system", "content": f"{messages[0]['content']}\n\n{note}"}
        else:
            messages.insert(0, {"role": "system", "content": note})
    return messages


def _message(message: Message) -> dict[str, JSONValue]:
    match message:
        case SystemMessage() | UserMessage():
            return {"role": message.role, "content": message.content}
        case AssistantMessage():
            # Never `content: None`: llama.cpp's server rejects it next to tool calls.
            out: dict[str, JSONValue] = {"role": "assistant", "content": message.content}
            if message.tool_calls:
                out["tool_calls"] = [_tool_call_param(call) for call in message.tool_calls]
            return out
        case ToolResultMessage():
            _require_function(message.kind, message.name)
            return {"role": "tool", "tool_call_id": message.call_id, "content": message.content}


def _tool_call_param(call: ToolCall) -> dict[str, JSONValue]:
    _require_function(call.kind, call.name)
    function = {"name": call.name, "arguments": call.arguments}
    return {"id": call.call_id, "type": "function", "function": function}


def _require_function(kind: str, name: str) -> None:
    if kind != "function":
        raise ValueError(
            f"tool {name!r} is a native {kind} tool; Chat Completions only has function tools, "
            "so send it as a function tool (capabilities.native_tools must stay empty here)"
        )


def _tools_and_choice(
    request: ModelRequest, capabilities: ModelCapabilities
) -> tuple[list[dict[str, JSONValue]], JSONValue]:
    """Function tools and a `tool_choice` the server honours.

    - `tool_calls_need_named_choice`: "auto"/"required" with exactly one tool names it, since such
      servers only return tool calls for a named function. With several tools the choice passes
      through unchanged (the engine decides what to do with a text reply).
    - no `forced_tool_choice`: a named tool is sent alone with "required" instead.
    """
    if not capabilities.tool_calls:
        raise ValueError("capabilities.tool_calls is off, yet the request carries tools")
    tools = list(request.tools)
    for tool in tools:
        _require_function(tool.kind, tool.name)
    name, how = named_choice(request, capabilities)
    lone = len(tools) == 1 and how != "none"
    if name is None and lone and capabilities.tool_calls_need_named_choice:
        name, how = tools[0].name, "object" if capabilities.forced_tool_choice else "required"
    result: JSONValue = how
    if name is not None and how == "object":
        result = _named(name)
    elif name is not None:
        tools = [tool for tool in tools if tool.name == name]
    # `strict` only where the server knows OpenAI strict schemas; others may reject the field.
    strict_ok = capabilities.strict_schema and capabilities.structured_output == "json_schema"
    params = [_function_param(tool, strict=strict_ok) for tool in tools]
    return params, result


def _function_param(tool: ToolDefinition, *, strict: bool) -> dict[str, JSONValue]:
    function: dict[str, JSONValue] = {
        "name": tool.name,
        "description": tool.description,
        "parameters": dict(tool.parameters or EMPTY_PARAMETERS),
    }
    if strict:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def _named(name: str) -> dict[str, JSONValue]:
    return {"type": "function", "function": {"name": name}}


def _response_format(shape: OutputShape) -> dict[str, JSONValue]:
    match shape.format:
        case "json_schema":
            json_schema: dict[str, JSONValue] = {"name": shape.name, "schema": shape.schema}
            if shape.strict:
                json_schema["strict"] = True
            return {"type": "json_schema", "json_schema": json_schema}
        case "json_object_schema":
            return {"type": "json_object", "schema": shape.schema}
        case "json_object" | None:
            return {"type": "json_object"}


def reply_from_completion(
    completion: ChatCompletion, request: ModelRequest, capabilities: ModelCapabilities
) -> ModelReply:
    """Our reply from a `ChatCompletion`: the first choice's text, tool calls and parsed output.

    Raises:
        ModelBehaviorError: no choice came back, or the text does not fit `request.output_type`.
    """
    if not completion.choices:
        raise ModelBehaviorError("the server returned a chat completion without choices")
    choice = completion.choices[0]
    message = choice.message
    calls = [
        (call.id, call.function.name, call.function.arguments)
        for call in message.tool_calls or ()
        # Not `== "function"`: some servers leave `type` out. Custom tools are never declared.
        if call.type != "custom"
    ]
    return _reply(
        text=message.content or "",
        raw_calls=calls,
        finish_reason=choice.finish_reason,
        usage=_usage(completion.usage),
        model=completion.model,
        request=request,
        capabilities=capabilities,
    )


def _reply(
    *,
    text: str,
    raw_calls: Sequence[tuple[str | None, str, str]],
    finish_reason: str | None,
    usage: TokenUsage,
    model: str,
    request: ModelRequest,
    capabilities: ModelCapabilities,
) -> ModelReply:
    calls = tuple(
        # Some servers leave the id out; the replayed history still needs one per call.
        ToolCall(call_id=call_id or f"call_{index}", name=name, arguments=arguments or "{}")
        for index, (call_id, name, arguments) in enumerate(raw_calls)
    )
    finish = finish_reason or "stop"
    if calls and finish == "stop":
        finish = "tool_calls"  # servers differ here; the engine reads one value
    parsed = None
    shape = output_shape(request, capabilities)
    if request.output_type is not None and shape is not None and not calls:
        parsed = parse_output(
            text, request.output_type, lenient=shape.lenient, usage=usage, model=model
        )
    return ModelReply(
        text=text,
        parsed=parsed,
        tool_calls=calls,
        usage=usage,
        model=model,
        finish_reason=finish,
    )


def _usage(usage: CompletionUsage | None) -> TokenUsage:
    if usage is None:
        return token_usage(input_tokens=0, cached=0, output_tokens=0, reasoning=0)
    prompt_details = usage.prompt_tokens_details
    completion_details = usage.completion_tokens_details
    return token_usage(
        input_tokens=usage.prompt_tokens,
        cached=prompt_details.cached_tokens if prompt_details else None,
        output_tokens=usage.completion_tokens,
        reasoning=completion_details.reasoning_tokens if completion_details else None,
    )


class _PartialCall:
    """One tool call being assembled from stream deltas."""

    __slots__ = ("arguments", "call_id", "name")

    def __init__(self) -> None:
        self.call_id: str | None = None
        self.name = ""
        self.arguments = ""


class _StreamAssembly:
    """Builds one reply from streamed chunks: content, tool-call deltas by index, usage."""

    def __init__(self) -> None:
        self._texts: list[str] = []
        self._calls: dict[int, _PartialCall] = {}
        self._finish_reason: str | None = None
        self._usage: CompletionUsage | None = None
        self._model = ""

    def add(self, chunk: ChatCompletionChunk) -> str:
        """Take one chunk; return its new content text ("" if none)."""
        self._model = chunk.model or self._model
        self._usage = chunk.usage or self._usage
        if not chunk.choices:
            return ""
        choice = chunk.choices[0]
        self._finish_reason = choice.finish_reason or self._finish_reason
        for delta_call in choice.delta.tool_calls or ():
            call = self._calls.setdefault(delta_call.index, _PartialCall())
            call.call_id = delta_call.id or call.call_id
            if delta_call.function is not None:
                # Servers send the name once, whole; arguments arrive in pieces.
                call.name = call.name or delta_call.function.name or ""
                call.arguments += delta_call.function.arguments or ""
        if text := choice.delta.content:
            self._texts.append(text)
            return text
        return ""

    @property
    def finished(self) -> bool:
        """Whether the last chunk (the one with a `finish_reason`) arrived."""
        return self._finish_reason is not None

    def reply(self, request: ModelRequest, capabilities: ModelCapabilities) -> ModelReply:
        calls = [(c.call_id, c.name, c.arguments) for _, c in sorted(self._calls.items())]
        return _reply(
            text="".join(self._texts),
            raw_calls=calls,
            finish_reason=self._finish_reason,
            usage=_usage(self._usage),
            model=self._model,
            request=request,
            capabilities=capabilities,
        )
