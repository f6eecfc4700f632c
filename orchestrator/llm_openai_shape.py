"""Request shaping shared by both OpenAI API styles, and capability presets of known servers.

How a request asks for structured output, caps its output and names a tool depends on what the
server honours (`ModelCapabilities`), never on its name. Pure: no SDK, no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from .llm import JSONValue, ModelCapabilities, ModelRequest
from .schema import output_schema, schema_name

ServerKind = Literal["openai", "compatible", "llama-server", "vllm", "ollama"]
"""The servers `SERVER_CAPABILITIES` has a preset for."""

COMPATIBLE_CAPABILITIES = ModelCapabilities(
    structured_output="json_schema",
    forced_tool_choice=False,
    tools_with_format=False,
    responses_text_format=False,
    strict_schema=False,
    prompt_caching=False,
    default_max_output_tokens=4096,
)
"""An unknown OpenAI-compatible server: assume nothing beyond what every one of them accepts."""

SERVER_CAPABILITIES: Mapping[ServerKind, ModelCapabilities] = {
    "openai": ModelCapabilities(),
    "compatible": COMPATIBLE_CAPABILITIES,
    # llama.cpp's llama-server with --jinja: a grammar from `response_format` (json_object +
    # schema, or json_schema) replaces the tool-call grammar; tool_choice must be a string;
    # `text.format` is dropped on /v1/responses, but a top-level `response_format` is read there.
    # It reports cached prompt tokens in both APIs.
    "llama-server": replace(
        COMPATIBLE_CAPABILITIES,
        structured_output="json_object_schema",
        parallel_requests=4,
        prompt_caching=True,
    ),
    # vLLM: named tool_choice objects and Responses `text.format` work; a format still
    # constrains the whole reply, so tools and a format never share a request.
    "vllm": replace(COMPATIBLE_CAPABILITIES, forced_tool_choice=True, responses_text_format=True),
    # Ollama: no tool_choice at all; `response_format` json_schema and Responses `text.format`
    # json_schema become its `format` grammar (json_object gets no schema).
    "ollama": replace(COMPATIBLE_CAPABILITIES, responses_text_format=True),
}
"""Capability presets per server, for the chat API; set `responses_api` for the Responses one."""

SCHEMA_PROMPT = (
    "Reply with exactly one JSON object that matches this JSON schema, and nothing else "
    "(no prose, no code fence):\n{schema}"
)
"""Appended to the instructions when the server does not enforce the schema itself."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputShape:
    """How one request asks for its `output_type` on the wire."""

    format: Literal["json_schema", "json_object_schema", "json_object"] | None
    """The format field to send; None sends none (the schema is only in the prompt)."""
    name: str
    schema: dict[str, JSONValue]
    """Strict or grammar form, per `ModelCapabilities.strict_schema`."""
    strict: bool
    """Send `strict: true` (OpenAI strict mode) with a json_schema format."""
    prompt_note: str | None
    """Text for the system prompt / instructions, when the server will not see the schema."""
    lenient: bool
    """Also accept a JSON object embedded in prose or a code fence."""


def output_shape(
    request: ModelRequest, capabilities: ModelCapabilities, *, text_format: bool = True
) -> OutputShape | None:
    """How `request` asks for structured output given what the server honours; None without
    an `output_type`.

    Args:
        request: The request.
        capabilities: The server's.
        text_format: Whether the API's own format field reaches the grammar (the Responses API
            passes `capabilities.responses_text_format`). `json_object_schema` is a separate
            field and does not depend on it.
    """
    output_type = request.output_type
    if output_type is None:
        return None
    style = capabilities.structured_output
    competing = request.tools and request.tool_choice != "none"
    if competing and not capabilities.tools_with_format:
        style = "prompt"  # a format's grammar would forbid the tool calls
    elif not text_format and style in ("json_schema", "json_object"):
        style = "prompt"
    schema = output_schema(output_type, strict=capabilities.strict_schema)
    strict = capabilities.strict_schema and style == "json_schema"
    note = None
    if style in ("json_object", "prompt"):
        note = SCHEMA_PROMPT.format(schema=json.dumps(schema))
    return OutputShape(
        format=None if style == "prompt" else style,
        name=schema_name(output_type),
        schema=schema,
        strict=strict,
        prompt_note=note,
        lenient=not strict,
    )


def output_cap(request: ModelRequest, capabilities: ModelCapabilities) -> int | None:
    """The output token cap to send: the request's, else the server's default."""
    if request.max_output_tokens is not None:
        return request.max_output_tokens
    return capabilities.default_max_output_tokens


def named_choice(request: ModelRequest, capabilities: ModelCapabilities) -> tuple[str | None, str]:
    """The tool `request.tool_choice` names, and how to send it.

    Returns:
        (None, the choice) for auto / required / none; (name, "object") when the server takes a
        named object; (name, "required") when it takes strings only, so the named tool goes
        alone with "required".

    Raises:
        ValueError: the choice names none of the request's tools.
    """
    choice = request.tool_choice
    if choice in ("auto", "required", "none"):
        return None, choice
    if not any(tool.name == choice for tool in request.tools):
        raise ValueError(f"tool_choice names {choice!r}, which is not one of the request's tools")
    return choice, "object" if capabilities.forced_tool_choice else "required"
