"""The model seam: our own request/reply values and the `ModelClient` Protocol, vendor-free."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel

from .models import TaskId, TokenUsage

Role = Literal["planner", "worker", "reviewer", "synthesizer"]
ToolKind = Literal["function", "apply_patch", "shell"]
"""How a tool reaches the model: a function tool, or a native Responses API tool."""
JSONValue = Any
"""A value decoded from JSON; only used at JSON edges."""
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]
"""How hard a reasoning model thinks before it answers (OpenAI's `reasoning_effort` values)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SystemMessage:
    """Instructions; kept first and stable so the prompt prefix is cacheable."""

    content: str
    role: Literal["system"] = "system"


@dataclass(frozen=True, slots=True, kw_only=True)
class UserMessage:
    content: str
    role: Literal["user"] = "user"


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCall:
    """A tool invocation requested by the model."""

    call_id: str
    name: str
    arguments: str
    """JSON text: function arguments, or the native item's `operation` / `action` object."""
    kind: ToolKind = "function"
    item_id: str | None = None
    """The Responses API output item id, echoed back when replaying history."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AssistantMessage:
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    role: Literal["assistant"] = "assistant"


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolResultMessage:
    """The answer to one `ToolCall`, in the shape its kind needs."""

    call_id: str
    name: str
    content: str
    """What the model reads."""
    kind: ToolKind = "function"
    is_error: bool = False
    native: Mapping[str, JSONValue] | None = None
    """Extra fields of a native output item (apply_patch status, shell per-command outputs)."""
    role: Literal["tool"] = "tool"


Message = SystemMessage | UserMessage | AssistantMessage | ToolResultMessage


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolDefinition:
    """What the model is told about one tool."""

    name: str
    description: str
    parameters: Mapping[str, JSONValue] = field(default_factory=lambda: {})
    """Strict JSON schema of the arguments (function tools only)."""
    kind: ToolKind = "function"
    strict: bool = True


StructuredOutputStyle = Literal["json_schema", "json_object_schema", "json_object", "prompt"]
"""How a backend is asked for structured output.

- json_schema: the `json_schema` response format (Responses API: `text.format`); strict when
  `ModelCapabilities.strict_schema`.
- json_object_schema: `{"type": "json_object", "schema": ...}` (llama.cpp server, which also
  reads it as a top-level `response_format` on its Responses endpoint).
- json_object: JSON mode without a schema; the schema goes in the prompt.
- prompt: no JSON mode; schema in the prompt, reply parsed leniently.
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelCapabilities:
    """What a backend can do, so the engine adapts instead of failing."""

    structured_output: StructuredOutputStyle = "json_schema"
    tool_calls: bool = True
    """Whether the backend returns tool calls at all."""
    forced_tool_choice: bool = True
    """Whether `tool_choice` may be an object naming one function. Off, a named choice goes as
    the string `"required"` with the named tool alone (llama.cpp's server reads any object as
    "auto"; Ollama has no `tool_choice`)."""
    tool_calls_need_named_choice: bool = False
    """Tool calls only come back when `tool_choice` names the function (llama.cpp server)."""
    parallel_requests: int = 64
    """Requests the backend serves at once; the engine never exceeds it."""
    responses_api: bool = False
    native_tools: frozenset[ToolKind] = frozenset()
    """Native (non-function) tool kinds the backend understands, e.g. apply_patch, shell."""
    streaming: bool = True
    prompt_caching: bool = True
    """Whether the backend reports cached input tokens (stable prefixes pay off)."""
    tools_with_format: bool = True
    """Whether one request may carry tools and a structured-output format and still get tool
    calls back. Off (llama.cpp, vLLM, Ollama: the format's grammar wins), the executor's tool
    turns go without a format and its report is a turn of its own, and a client that is sent
    both anyway puts the schema in the prompt instead."""
    responses_text_format: bool = True
    """Whether the Responses API honours `text.format`; off (llama.cpp's server drops it), the
    schema goes in the instructions and the reply is parsed leniently."""
    strict_schema: bool = True
    """Whether output schemas must be in OpenAI's strict subset (all fields required, no
    `maxLength` & co.). Off, they keep the constraints a grammar-based server enforces."""
    default_max_output_tokens: int | None = None
    """Output cap sent when a request names none; compatible servers may otherwise generate
    until their context is full. None sends no cap (OpenAI's default is bounded)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelRequest:
    """One call to a model, independent of vendor."""

    role: Role
    model: str
    messages: tuple[Message, ...]
    tools: tuple[ToolDefinition, ...] = ()
    output_type: type[BaseModel] | None = None
    """Ask for a reply parsed into this schema."""
    tool_choice: Literal["auto", "required", "none"] | str = "auto"
    """auto / required / none, or a tool name to force."""
    temperature: float | None = None
    max_output_tokens: int | None = None
    reasoning_effort: ReasoningEffort | None = None
    """Sent only when set: Chat `reasoning_effort`, Responses `reasoning.effort`."""
    tier: str = ""
    task_id: TaskId | None = None
    prompt_cache_key: str | None = None
    """Routes calls that share a prefix to the same cache (OpenAI `prompt_cache_key`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimitInfo:
    """What the server said about its rate limits on one reply (`x-ratelimit-*` headers)."""

    limit_requests: int | None = None
    """Requests allowed per minute."""
    limit_tokens: int | None = None
    """Tokens allowed per minute."""
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    reset_s: float | None = None
    """Seconds until the exhausted budget (requests or tokens, the later) is back."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelReply:
    """What came back from one call."""

    text: str = ""
    parsed: BaseModel | None = None
    """Set when the request had an `output_type` and the reply validated against it."""
    tool_calls: tuple[ToolCall, ...] = ()
    usage: TokenUsage = field(default_factory=TokenUsage)
    model: str = ""
    """The model that answered, as the backend named it."""
    finish_reason: str = "stop"
    rate_limits: RateLimitInfo | None = None
    """The server's rate-limit headers, when it sent any; the gateway learns limits from them."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TextDelta:
    """A piece of streamed output text."""

    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplyDone:
    """The end of a stream, with the full reply."""

    reply: ModelReply


StreamEvent = TextDelta | ReplyDone


_CHARS_PER_TOKEN = 4
"""A rough, model-independent ratio; estimates are marked as such wherever they are used."""


def estimate_input_tokens(request: ModelRequest) -> int:
    """About how many input tokens `request` is, for TPM buckets and unreported usage."""
    chars = 0
    for message in request.messages:
        chars += len(message.content)
        if isinstance(message, AssistantMessage):
            chars += sum(len(call.arguments) + len(call.name) for call in message.tool_calls)
    for tool in request.tools:
        chars += len(tool.description) + len(repr(tool.parameters))
    return chars // _CHARS_PER_TOKEN + 1


def estimate_usage(request: ModelRequest, output: str) -> TokenUsage:
    """Usage we estimate for a call the API reported none for; every token is flagged estimated."""
    tokens_in = estimate_input_tokens(request)
    tokens_out = (len(output) + _CHARS_PER_TOKEN - 1) // _CHARS_PER_TOKEN
    return TokenUsage(
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        requests=1,
        estimated_tokens=tokens_in + tokens_out,
    )


def whole_reply_stream(reply: ModelReply) -> tuple[StreamEvent, ...]:
    """The stream events of a reply that arrived in one piece (for backends that cannot stream)."""
    text: tuple[StreamEvent, ...] = (TextDelta(text=reply.text),) if reply.text else ()
    return (*text, ReplyDone(reply=reply))


@runtime_checkable
class ModelClient(Protocol):
    """The one seam between the engine and any model backend."""

    @property
    def capabilities(self) -> ModelCapabilities: ...

    async def complete(self, request: ModelRequest) -> ModelReply:
        """Run one request to completion."""
        ...


@runtime_checkable
class StreamingModelClient(ModelClient, Protocol):
    """A backend that can also stream text; the planner uses it to dispatch tasks early."""

    def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Yield text deltas, then one `ReplyDone`."""
        ...
