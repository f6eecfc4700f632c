"""The requests of the llama-server conformance matrix: one `ModelRequest` and capabilities per
single-call case, shared by the bench (which sends them) and the payload tests (which rebuild the
recorded bodies from them)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.llm import (
    AssistantMessage,
    ModelCapabilities,
    ModelRequest,
    StructuredOutputStyle,
    SystemMessage,
    ToolCall,
    ToolDefinition,
    ToolResultMessage,
    UserMessage,
)
from orchestrator.llm_openai_shape import SERVER_CAPABILITIES

ApiStyle = Literal["chat", "responses"]
MODES: tuple[StructuredOutputStyle, ...] = (
    "json_schema",
    "json_object_schema",
    "json_object",
    "prompt",
)
STYLES: tuple[ApiStyle, ...] = ("chat", "responses")
MODEL = "smollm2-135m"
CAP_TOKENS = 160
"""The bench's default output cap: a 135M model at temperature 0 loops rather than stops."""
MAX_CHARS = 12
"""Every string of `Brief` is at most this long: shorter than any natural answer, so a reply
that fits proves the grammar cut it."""

_PATH = {"path": {"type": "string", "description": "A path relative to the workspace."}}
READ_FILE = ToolDefinition(
    name="read_file",
    description="Read a text file of the workspace.",
    parameters={
        "type": "object",
        "properties": _PATH,
        "required": ["path"],
        "additionalProperties": False,
    },
)
LIST_DIR = ToolDefinition(
    name="list_dir",
    description="List the files of a folder of the workspace.",
    parameters={
        "type": "object",
        "properties": _PATH,
        "required": ["path"],
        "additionalProperties": False,
    },
)


class Brief(BaseModel):
    """A planner-like answer with tightly bounded strings."""

    model_config = ConfigDict(extra="forbid")
    topic: Annotated[str, Field(max_length=MAX_CHARS)]
    summary: Annotated[str, Field(max_length=MAX_CHARS)]
    points: Annotated[list[Annotated[str, Field(max_length=MAX_CHARS)]], Field(max_length=2)]


def capabilities(
    style: ApiStyle, mode: StructuredOutputStyle = "json_object_schema", **changes: object
) -> ModelCapabilities:
    """The llama-server preset for `style` and `mode`, with the bench's output cap."""
    preset = SERVER_CAPABILITIES["llama-server"]
    caps = replace(
        preset,
        structured_output=mode,
        responses_api=style == "responses",
        default_max_output_tokens=CAP_TOKENS,
    )
    return replace(caps, **changes)  # pyright: ignore[reportArgumentType]


def _request(
    *messages: SystemMessage | UserMessage | AssistantMessage | ToolResultMessage, **fields: object
) -> ModelRequest:
    return ModelRequest(
        role="worker",
        model=MODEL,
        messages=messages,
        temperature=0.0,
        **fields,  # pyright: ignore[reportArgumentType]
    )


SYSTEM = SystemMessage(content="You are a helpful assistant. Use the tools when asked.")


def brief_request() -> ModelRequest:
    """A structured answer that invites a long summary; the grammar must cut it."""
    return _request(
        SystemMessage(content="You are a historian."),
        UserMessage(content="Explain the whole history of the Roman Empire in great detail."),
        output_type=Brief,
    )


def tool_request(choice: str = "auto", *, output: bool = False) -> ModelRequest:
    """A tool turn: the model is asked to list the workspace's folder."""
    return _request(
        SYSTEM,
        UserMessage(content="List the files in the folder 'src' with the list_dir tool."),
        tools=(READ_FILE, LIST_DIR),
        tool_choice=choice,
        output_type=Brief if output else None,
    )


def replay_request() -> ModelRequest:
    """A history with assistant text and a tool round, as the executor replays it."""
    call = ToolCall(call_id="call_1", name="read_file", arguments='{"path": "notes.txt"}')
    return _request(
        SYSTEM,
        UserMessage(content="Read notes.txt."),
        AssistantMessage(content="I will read it.", tool_calls=(call,)),
        ToolResultMessage(call_id="call_1", name="read_file", content="1: the word is pineapple"),
        AssistantMessage(content="The word is pineapple."),
        UserMessage(content="Say the word again, in one word."),
        tools=(READ_FILE,),
        tool_choice="none",
    )


def capped_request() -> ModelRequest:
    """No cap in the request: the capability's default must stop it."""
    return _request(UserMessage(content="Count from 1 to 500, one number per line."))


@dataclass(frozen=True, slots=True, kw_only=True)
class Recorded:
    """One single-call case whose exchange is recorded under tests/data/server_payloads/."""

    name: str
    style: ApiStyle
    caps: ModelCapabilities
    request: ModelRequest


def recorded_cases() -> tuple[Recorded, ...]:
    """The recorded single-call cases, by file name."""
    cases: list[Recorded] = []
    for style in STYLES:
        for mode in MODES:
            cases.append(
                Recorded(
                    name=f"{style}_brief_{mode}",
                    style=style,
                    caps=capabilities(style, mode),
                    request=brief_request(),
                )
            )
        cases += [
            Recorded(
                name=f"{style}_named_choice",
                style=style,
                caps=capabilities(style),
                request=tool_request("list_dir"),
            ),
            Recorded(
                name=f"{style}_tools_and_format",
                style=style,
                caps=capabilities(style),
                request=tool_request("required", output=True),
            ),
            Recorded(
                name=f"{style}_replay",
                style=style,
                caps=capabilities(style),
                request=replay_request(),
            ),
            Recorded(
                name=f"{style}_output_cap",
                style=style,
                caps=capabilities(style, default_max_output_tokens=16),
                request=capped_request(),
            ),
        ]
    return tuple(cases)
