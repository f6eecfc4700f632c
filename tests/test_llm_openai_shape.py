"""Request shaping shared by both API styles (`llm_openai_shape`) and the schema forms (`schema`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.llm import (
    ModelCapabilities,
    ModelRequest,
    StructuredOutputStyle,
    ToolDefinition,
    UserMessage,
)
from orchestrator.llm_openai_shape import (
    COMPATIBLE_CAPABILITIES,
    SERVER_CAPABILITIES,
    named_choice,
    output_cap,
    output_shape,
)
from orchestrator.schema import grammar_json_schema, output_schema, strict_json_schema

TOOL = ToolDefinition(name="read_file", description="Read a file.")


class Item(BaseModel):
    name: str = Field(min_length=1, max_length=20)


class Report(BaseModel):
    model_config = ConfigDict(extra="forbid")
    summary: str = Field(max_length=240)
    items: list[Item] = Field(max_length=5)
    note: str | None = None


def request(**fields: Any) -> ModelRequest:
    return ModelRequest(role="worker", model="m", messages=(UserMessage(content="Go."),), **fields)


def test_grammar_schema_keeps_the_constraints_a_grammar_enforces() -> None:
    schema = grammar_json_schema(Report)
    properties = schema["properties"]
    assert properties["summary"]["maxLength"] == 240
    assert properties["items"]["maxItems"] == 5
    assert schema["$defs"]["Item"]["properties"]["name"] == {
        "maxLength": 20,
        "minLength": 1,
        "title": "Name",
        "type": "string",
    }
    assert schema["required"] == ["summary", "items"]  # optional stays optional
    assert schema["additionalProperties"] is False
    assert schema["$defs"]["Item"]["additionalProperties"] is False  # closed, not just forbid


def test_strict_schema_drops_them_and_requires_everything() -> None:
    schema = strict_json_schema(Report)
    assert "maxLength" not in schema["properties"]["summary"]
    assert "maxItems" in schema["properties"]["items"]  # OpenAI strict mode accepts maxItems
    assert "maxLength" not in schema["$defs"]["Item"]["properties"]["name"]
    assert schema["required"] == ["summary", "items", "note"]


@pytest.mark.parametrize("strict", [True, False])
def test_output_schema_picks_the_form(strict: bool) -> None:
    expected = strict_json_schema(Report) if strict else grammar_json_schema(Report)
    assert output_schema(Report, strict=strict) == expected


def test_presets_default_off_for_unknown_servers_and_on_for_openai() -> None:
    assert SERVER_CAPABILITIES["openai"] == ModelCapabilities()
    for name in ("compatible", "llama-server", "vllm", "ollama"):
        caps = SERVER_CAPABILITIES[name]
        assert not caps.tools_with_format, name
        assert not caps.strict_schema, name
        assert caps.default_max_output_tokens == 4096, name
        assert caps.prompt_caching is (name == "llama-server"), name
    compatible = SERVER_CAPABILITIES["compatible"]
    assert compatible == COMPATIBLE_CAPABILITIES
    assert not compatible.forced_tool_choice and not compatible.responses_text_format
    assert SERVER_CAPABILITIES["llama-server"].structured_output == "json_object_schema"
    assert SERVER_CAPABILITIES["vllm"].forced_tool_choice
    assert SERVER_CAPABILITIES["ollama"].responses_text_format


@pytest.mark.parametrize(
    ("caps", "tools", "text_format", "expected"),
    [
        (ModelCapabilities(), True, True, ("json_schema", True, False)),
        (COMPATIBLE_CAPABILITIES, False, True, ("json_schema", False, True)),
        (COMPATIBLE_CAPABILITIES, True, True, (None, False, True)),
        (COMPATIBLE_CAPABILITIES, False, False, (None, False, True)),
        (SERVER_CAPABILITIES["llama-server"], False, False, ("json_object_schema", False, True)),
        (SERVER_CAPABILITIES["llama-server"], True, False, (None, False, True)),
    ],
    ids=[
        "openai-combines",
        "compatible-alone",
        "compatible-with-tools",
        "no-text-format",
        "llama-response-format-ignores-text-format",
        "llama-with-tools",
    ],
)
def test_output_shape(
    caps: ModelCapabilities,
    tools: bool,
    text_format: bool,
    expected: tuple[str | None, bool, bool],
) -> None:
    req = request(output_type=Report, tools=(TOOL,) if tools else ())
    shape = output_shape(req, caps, text_format=text_format)
    assert shape is not None
    assert (shape.format, shape.strict, shape.lenient) == expected
    assert (shape.prompt_note is not None) == (shape.format is None)


@pytest.mark.parametrize(
    ("style", "in_prompt"),
    [
        ("json_schema", False),
        ("json_object_schema", False),
        ("json_object", True),
        ("prompt", True),
    ],
)
def test_output_shape_puts_the_schema_in_the_prompt_unless_enforced(
    style: StructuredOutputStyle, in_prompt: bool
) -> None:
    caps = replace(COMPATIBLE_CAPABILITIES, structured_output=style)
    shape = output_shape(request(output_type=Report), caps)
    assert shape is not None
    assert (shape.prompt_note is not None) is in_prompt


def test_output_shape_none_without_output_type() -> None:
    assert output_shape(request(), ModelCapabilities()) is None


def test_output_cap() -> None:
    assert output_cap(request(), ModelCapabilities()) is None
    assert output_cap(request(), COMPATIBLE_CAPABILITIES) == 4096
    assert output_cap(request(max_output_tokens=9), COMPATIBLE_CAPABILITIES) == 9


@pytest.mark.parametrize(
    ("choice", "forced", "expected"),
    [
        ("auto", True, (None, "auto")),
        ("none", False, (None, "none")),
        ("read_file", True, ("read_file", "object")),
        ("read_file", False, ("read_file", "required")),
    ],
)
def test_named_choice(choice: str, forced: bool, expected: tuple[str | None, str]) -> None:
    caps = ModelCapabilities(forced_tool_choice=forced)
    assert named_choice(request(tools=(TOOL,), tool_choice=choice), caps) == expected


def test_named_choice_must_name_a_tool_of_the_request() -> None:
    with pytest.raises(ValueError, match="'list_dir'"):
        named_choice(request(tools=(TOOL,), tool_choice="list_dir"), ModelCapabilities())
